"""A frame batch with its canvas plan and its cuts -- what M3DDM Outpaint Canvas hands to the IMAGE nodes -- and
the global frames encoded for it.

A canvas whose preprocessing is ``auto`` follows the model that samples it (:func:`preprocessing_family`, the one
rule): the same canvas serves M3DDM and M3DDM+ weights, each with its own preprocessing.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Optional, Union

import torch

from .canvas import CanvasPlan
from .encode import EncodeFn, encode_global_frames
from .inputs import Edit
from .outpaint import PreparedVideo, prepare
from .passes import SampleSettings
from .resume import fingerprint
from .schedule import Strides


class GlobalFramesError(ValueError):
    """Global frames that do not fit the run: encoded for another video, canvas or preprocessing, or given for a
    video split into shots."""


def preprocessing_family(preprocessing: str, family: Optional[str] = None) -> str:
    """The family whose preprocessing a plan uses: ``auto`` takes the model's ``family`` (M3DDM until a model is
    known); m3ddm or m3ddm_plus as chosen (an unknown one is refused by :func:`.canvas.plan_canvas`)."""
    return (family or "m3ddm") if preprocessing == "auto" else preprocessing


@dataclass(frozen=True)
class GlobalFrames:
    """The 16 global frames of a :class:`FrameCanvas`'s video, encoded for ``plan``."""

    latents: torch.Tensor  # [16, 4, h, w], scaled by 0.18215
    video_id: str
    plan: CanvasPlan


@dataclass(frozen=True)
class FrameCanvas:
    """``frames`` ``[N, H, W, 3]`` float 0..1 (as given, never changed), the ``plan`` made for them, how the video
    is cut (``edit``), and whether the plan's preprocessing follows the model (``follows_model``). Frozen: a
    front-end may hand the same one to several consumers."""

    plan: CanvasPlan
    frames: torch.Tensor
    video_id: str  # :func:`.resume.fingerprint` of the frames
    edit: Edit = Edit()
    follows_model: bool = False

    @classmethod
    def of(cls, frames: torch.Tensor, plan: CanvasPlan, edit: Edit = Edit(),
           preprocessing: Optional[str] = None) -> "FrameCanvas":
        return cls(plan, frames, fingerprint(frames), edit, preprocessing == "auto")

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def plan_for(self, family: Optional[str]) -> CanvasPlan:
        """The plan a model of ``family`` samples with (None: no model yet, the canvas's own)."""
        if family is not None and self.follows_model and self.plan.family != family:
            return dataclasses.replace(self.plan, family=family)
        return self.plan

    def check_source(self, frames: torch.Tensor) -> None:
        """Refuse ``frames`` that are not the ones this canvas was planned for."""
        if fingerprint(frames) != self.video_id:
            raise ValueError("these original frames are not the ones the canvas was made from")

    def encode_global(self, family: Optional[str], encode: EncodeFn) -> GlobalFrames:
        """The global frames as a model of ``family`` samples them (:func:`.encode.encode_global_frames`)."""
        plan = self.plan_for(family)
        return GlobalFrames(encode_global_frames(self.frames, plan, encode), self.video_id, plan)

    def global_latents(self, global_frames: Optional[GlobalFrames], family: Optional[str]) -> Optional[torch.Tensor]:
        """The latents of ``global_frames`` if they were encoded for this canvas as a model of ``family`` samples
        it, else a :class:`GlobalFramesError` saying which of the two differs."""
        if global_frames is None:
            return None
        plan = self.plan_for(family)
        other = global_frames.video_id != self.video_id
        if not other and global_frames.plan.family != plan.family:
            raise GlobalFramesError(f"the global frames were encoded with {global_frames.plan.family} preprocessing, "
                                    f"the model samples with {plan.family}: encode them with the sampling model "
                                    f"given, or pin the canvas's preprocessing to {plan.family}")
        if other or global_frames.plan != plan:
            raise GlobalFramesError("the global frames were encoded for another video or canvas: encode them from "
                                    "this same canvas")
        return global_frames.latents

    def prepare(self, family: Optional[str], encode: EncodeFn, settings: SampleSettings, fps: float, *,
                seed: int = 0, strides: Strides = "auto", schedule: str = "fixed", edit: Optional[Edit] = None,
                global_frames: Optional[GlobalFrames] = None,
                shot_seeds: Union[Mapping[int, int], str, None] = None) -> PreparedVideo:
        """:func:`.outpaint.prepare` of the frames, resumable (their hash keys the pass store), for a model of
        ``family``, cut as ``edit`` says (None: as the canvas is). Global frames and cuts are refused together
        before any encoding: the global frames cover the whole video, each shot takes its own."""
        edit = self.edit if edit is None else edit
        latents = self.global_latents(global_frames, family)
        if edit.cuts and latents is not None:
            raise GlobalFramesError("global frames cover the whole video, but this run is split into shots (each "
                                    "takes its own): leave global_frames out, or set shots to none")
        return prepare(self.frames, self.num_frames, self.plan_for(family), encode, settings, fps, seed=seed,
                       strides=strides, schedule=schedule, cuts=edit.cuts, shot_seeds=shot_seeds,
                       global_latents=latents, resumable=True, groups=edit.groups, transitions=edit.transitions)
