"""Before/after review frames: the source letterboxed to the target frame beside the outpainted result."""
from __future__ import annotations

from typing import Optional

import torch

from ..pipeline.canvas import CanvasPlan
from ..pipeline.parameters import COMPARE_LAYOUTS as LAYOUTS


def comparison_layout(plan: CanvasPlan, layout: str = "auto") -> str:
    """``"side by side"`` or ``"stacked"``: ``auto`` picks the one whose result is closer to square (portrait
    outputs side by side, landscape ones stacked)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is unknown; choose one of {', '.join(LAYOUTS)}")
    if layout != "auto":
        return layout
    oh, ow = plan.output_hw
    return "side by side" if oh >= ow else "stacked"


def comparison_hw(plan: CanvasPlan, layout: str = "auto", gap: int = 16) -> tuple[int, int]:
    """``(H, W)`` of a comparison frame."""
    oh, ow = plan.output_hw
    if comparison_layout(plan, layout) == "side by side":
        return oh, 2 * ow + gap
    return 2 * oh + gap, ow


def compare_frames(source: torch.Tensor, result: torch.Tensor, plan: CanvasPlan, layout: str = "auto",
                   gap: int = 16, background: float = 0.0, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """source ``[N, H, W, C]`` and result ``[N, OH, OW, C]`` (float 0..1) -> ``[N, *comparison_hw, C]``: the source
    where it sits in the output frame, ``background`` around it (the letterbox), then the gap, then the result.
    Written frame by frame into one tensor (``out`` when given)."""
    n, c = source.shape[0], source.shape[-1]
    if tuple(source.shape[1:3]) != tuple(plan.frame_hw):
        raise ValueError(f"source frames are {source.shape[2]}x{source.shape[1]}, the canvas was planned for "
                         f"{plan.frame_hw[1]}x{plan.frame_hw[0]}")
    if tuple(result.shape[1:3]) != tuple(plan.output_hw) or result.shape[0] != n:
        raise ValueError(f"{result.shape[0]} result frames of {result.shape[2]}x{result.shape[1]} for {n} source "
                         f"frames and a {plan.output_hw[1]}x{plan.output_hw[0]} output")
    (oh, ow), (fh, fw), (y0, x0) = plan.output_hw, plan.frame_hw, plan.content_out_yx
    h, w = comparison_hw(plan, layout, gap)
    if out is None:
        out = torch.empty((n, h, w, c), dtype=result.dtype, device=result.device)
    beside = comparison_layout(plan, layout) == "side by side"
    ry, rx = (0, ow + gap) if beside else (oh + gap, 0)
    for i in range(n):
        out[i].fill_(background)
        out[i, y0:y0 + fh, x0:x0 + fw] = source[i].to(out.dtype)
        out[i, ry:ry + oh, rx:rx + ow] = result[i]
    return out
