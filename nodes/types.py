"""The pack's custom socket types (defined once) and the values that travel on them.

Values are frozen dataclasses: ComfyUI hands the same object to every consumer and caches it, so no node may
change one in place.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Optional

import torch
from comfy_api.latest import io

from ..m3ddm_core import CanvasPlan, Edit

M3DDMModelType = io.Custom("M3DDM_MODEL")
M3DDMCanvasType = io.Custom("M3DDM_CANVAS")
M3DDMGlobalType = io.Custom("M3DDM_GLOBAL")
M3DDMKeyframesType = io.Custom("M3DDM_KEYFRAMES")


@dataclass(frozen=True)
class M3DDMModel:
    """A loaded UNet inside a ComfyUI ModelPatcher (ComfyUI moves and offloads it)."""

    patcher: object
    name: str
    dtype: torch.dtype
    family: str = "m3ddm"  # the preprocessing its weights were trained with (m3ddm or m3ddm_plus)


@dataclass(frozen=True)
class Canvas:
    """A video's outpainting geometry plus the source frames it was planned for (not copied, never changed)."""

    plan: CanvasPlan
    frames: torch.Tensor  # IMAGE [N, H, W, C] as the user gave it
    video_id: str  # fingerprint of the frames: catches a canvas or global frames from another video
    cuts: tuple[int, ...] = ()  # first frames of new shots (M3DDM Outpaint Canvas's shots input)
    groups: Optional[tuple[int, ...]] = None  # each shot's camera set-up (its setups input); None: each its own
    transitions: tuple = ()  # dissolves and fades found with the cuts: their borders are blended
    follows_model: bool = False  # preprocessing "auto": the plan takes the model's family where it is sampled

    def plan_for_model(self, model: "M3DDMModel") -> CanvasPlan:
        """The plan a model samples with: the canvas's, in the model's family when the canvas follows it."""
        family = getattr(model, "family", self.plan.family)  # checks that need no model run before one is given
        if self.follows_model and self.plan.family != family:
            return dataclasses.replace(self.plan, family=family)
        return self.plan

    @property
    def edit(self) -> Edit:
        return Edit(self.cuts, self.transitions, self.groups)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


@dataclass(frozen=True)
class GlobalFrames:
    latents: torch.Tensor  # [16, 4, h, w], scaled by 0.18215
    video_id: str
    plan: CanvasPlan


def video_fingerprint(frames: torch.Tensor) -> str:
    """Cheap identity of a frame batch: shape plus a hash of a few sampled frames."""
    n = frames.shape[0]
    h = hashlib.sha1(str(tuple(frames.shape)).encode())
    for i in sorted({0, n // 2, n - 1}):
        h.update(frames[i, ::7, ::7].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
