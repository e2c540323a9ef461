"""Composite at native resolution: generated border around the untouched original frame.

The generated canvas (straight from the VAE, or upscaled by any factor) is resampled onto the output grid with
the plan's affine map, the original pixels are pasted back bit-exact, and a seam feather of ``feather`` pixels
blends the generated border into the edge of the original -- on the generated side only, so no original pixel
changes.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .canvas import CanvasPlan


def _sampling_grid(plan: CanvasPlan, device) -> torch.Tensor:
    """grid_sample coordinates (align_corners=False) of every output pixel on the canvas: ``[1, OH, OW, 2]``."""
    (fh, fw), (oh, ow) = plan.frame_hw, plan.output_hw
    by, bx, bh, bw = plan.content_box
    ch, cw = plan.canvas_hw
    # float64 on the CPU for exact coordinates (MPS has no float64), then float32 on the frames' device.
    oy = torch.arange(oh, dtype=torch.float64) + 0.5
    ox = torch.arange(ow, dtype=torch.float64) + 0.5
    cy = by + (oy - plan.content_out_yx[0]) * (bh / fh)  # canvas pixel-edge coordinates
    cx = bx + (ox - plan.content_out_yx[1]) * (bw / fw)
    gy = (cy / ch) * 2 - 1
    gx = (cx / cw) * 2 - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)
    return grid.unsqueeze(0).float().to(device)


def feather_weights(plan: CanvasPlan, feather: int, device=None) -> torch.Tensor:
    """``[OH, OW]`` weight of the generated pixels: 0 inside the original, rising to 1 at ``feather`` px out."""
    oh, ow = plan.output_hw
    y0, x0 = plan.content_out_yx
    y1, x1 = y0 + plan.frame_hw[0], x0 + plan.frame_hw[1]
    ys = torch.arange(oh, dtype=torch.float32, device=device)
    xs = torch.arange(ow, dtype=torch.float32, device=device)
    dy = torch.clamp(torch.maximum(y0 - ys, ys - (y1 - 1)), min=0)
    dx = torch.clamp(torch.maximum(x0 - xs, xs - (x1 - 1)), min=0)
    dist = torch.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2)
    if feather <= 0:
        return (dist > 0).float()
    return torch.clamp(dist / float(feather), 0, 1)


def composite(original: torch.Tensor, generated: torch.Tensor, plan: CanvasPlan, feather: int = 8,
              out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """original ``[N, H, W, C]`` and generated ``[N, gh, gw, C]`` (any resolution of the canvas) float 0..1
    -> ``[N, OH, OW, C]``; the original frame's pixels are copied unchanged into the content box.

    Frames are composited one at a time straight into the result (``out`` when given: a buffer of that shape
    and the original's dtype, e.g. reused chunk after chunk), so the peak is the result plus one frame's work."""
    n, fh, fw = original.shape[:3]
    if (fh, fw) != tuple(plan.frame_hw):
        raise ValueError(f"original frames are {fw}x{fh}, the canvas plan was made for {plan.frame_hw[1]}x{plan.frame_hw[0]}")
    if generated.shape[0] != n:
        raise ValueError(f"{generated.shape[0]} generated frames for {n} original frames")
    grid = _sampling_grid(plan, original.device)
    weight = feather_weights(plan, feather, original.device)[None, :, :, None]
    y0, x0 = plan.content_out_yx
    # Edge-extended original: what the seam blends towards, so the border meets the frame without a step.
    edge_idx_y = torch.clamp(torch.arange(plan.output_hw[0], device=original.device) - y0, 0, fh - 1)
    edge_idx_x = torch.clamp(torch.arange(plan.output_hw[1], device=original.device) - x0, 0, fw - 1)
    shape = (n, *plan.output_hw, original.shape[-1])
    if out is None:
        out = torch.empty(shape, dtype=original.dtype, device=original.device)
    elif tuple(out.shape) != shape or out.dtype != original.dtype:
        raise ValueError(f"out is {tuple(out.shape)} {out.dtype}; the composite is {shape} {original.dtype}")
    for i in range(n):  # one frame at a time keeps 4K videos within memory
        gen = generated[i:i + 1].permute(0, 3, 1, 2).float()
        resampled = F.grid_sample(gen, grid.expand(1, -1, -1, -1), mode="bicubic", padding_mode="border",
                                  align_corners=False).clamp(0, 1).permute(0, 2, 3, 1)[0]
        edge = original[i].float()[edge_idx_y][:, edge_idx_x]
        frame = weight[0] * resampled + (1 - weight[0]) * edge
        out[i] = frame.to(original.dtype)
        out[i, y0:y0 + fh, x0:x0 + fw] = original[i]
    return out
