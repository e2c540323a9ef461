"""The review gate: judge a long render by its key frames, change them, then finish it.

M3DDM's coarse-to-fine schedule samples each shot's sparsest level first (e.g. every 15th or 30th frame); every finer
pass is guided by it. :func:`preview_keyframes` samples only that level into the run's pass store and composites
the key frames; :func:`finish_review` samples the rest with the same store, so nothing is sampled twice and,
unedited, the result equals one :func:`.outpaint.sample` of the whole plan. An edited key frame is brought back onto
its working canvas, encoded, and guides every later pass.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import torch

from .canvas import CanvasPlan
from .composite import composite
from .encode import EncodeFn
from .inputs import shot_summary
from .outpaint import Outpainted, PreparedVideo, Runtime, encode_edits, sample
from .passes import DecodeFn

log = logging.getLogger("M3DDM")


@dataclass(frozen=True)
class KeyframeReview:
    """A run stopped after its key frames: the planned and encoded ``video`` (its pass store key follows from it),
    ``frames`` the key frames' indexes, ``preview`` them composited ``[K, OH, OW, 3]`` float 0..1 as shown,
    ``canvases`` their decoded working canvases ``[K, ch, cw, 3]``, ``shots`` each shot's frames, set-up and key
    frames as text. Frozen: a front-end may hand the same one to several consumers."""

    video: PreparedVideo
    canvas: CanvasPlan
    frames: tuple[int, ...]
    preview: torch.Tensor
    canvases: torch.Tensor
    shots: str

    @property
    def remaining(self) -> int:
        """How many passes :func:`finish_review` has left to sample."""
        return len(self.video.plan) - len(self.video.plan.preview_passes())

    def edits(self, edited: torch.Tensor, encode: EncodeFn) -> dict[int, torch.Tensor]:
        """The key frames changed in ``edited`` (``preview`` given back, some frames repainted), as latents for
        :func:`.outpaint.sample`'s overrides (:func:`.outpaint.encode_edits`)."""
        if tuple(edited.shape) != tuple(self.preview.shape):
            raise ValueError(f"edited has shape {tuple(edited.shape)}, the preview {tuple(self.preview.shape)}: give "
                             "the preview's key frames, same count, order and size")
        return encode_edits(edited, self.preview, self.frames, self.canvas, self.canvases, encode)


def preview_keyframes(video: PreparedVideo, source: torch.Tensor, runtime: Runtime, decode: DecodeFn,
                      feather: int) -> KeyframeReview:
    """Sample the key frames of ``video`` (:meth:`.plan.VideoPlan.preview_passes`: each shot's sparsest level, or
    its first clip when that level is every frame) and composite them onto ``source`` ``[N, H, W, 3]`` float 0..1,
    the frames ``video`` was prepared from, with ``feather``."""
    plan, first = video.plan, video.plan.preview_passes()
    keys = sample(video, runtime, only=first, decode=decode)
    canvas = video.encoded.plan
    preview = composite(source[keys.frames].float().cpu(), keys.canvases, canvas, feather)
    log.info("[%s] %d key frames of %d frames (%d of %d passes): %s", runtime.name, len(keys.frames),
             plan.num_frames, len(first), len(plan), keys.frames)
    if len(first) < len(plan.first_level()):
        log.info("[%s] a short video: its sparsest level is every frame, so the preview is each shot's first clip, "
                 "not the whole render", runtime.name)
    shots = shot_summary(plan, keys.frames)
    log.info("[%s] %s", runtime.name, shots.replace("\n", "; "))
    return KeyframeReview(video, canvas, tuple(keys.frames), preview, keys.canvases, shots)


def finish_review(review: KeyframeReview, runtime: Runtime, decode: Optional[DecodeFn] = None,
                  edited: Optional[torch.Tensor] = None, encode: Optional[EncodeFn] = None) -> Outpainted:
    """Sample what :func:`preview_keyframes` left, the key frames loaded from the store; ``edited`` (the preview
    given back with some key frames changed, encoded by ``encode``) replaces those frames, guiding the rest."""
    overrides = {}
    if edited is not None:
        overrides = review.edits(edited, encode)
        log.info("[%s] edited key frames: %s", runtime.name, sorted(overrides) or "none")
    return sample(review.video, runtime, overrides=overrides, decode=decode)
