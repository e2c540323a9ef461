"""The pack's custom socket types (defined once) and the model handle that travels on M3DDM_MODEL; the canvas,
global frames and key frames are the core's frozen :class:`FrameCanvas`, :class:`GlobalFrames` and
:class:`KeyframeReview` (ComfyUI hands the same object to every consumer and caches it: none is changed in place)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from comfy_api.latest import io

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
