"""Composite at native resolution: generated border around the untouched original frame.

The generated canvas (straight from the VAE, or upscaled by any factor) is resampled onto the output grid with
the plan's affine map, the original pixels are pasted back bit-exact, and a seam feather of ``feather`` pixels
blends the generated border into the edge of the original -- on the generated side only, so no original pixel
changes. Only the border is resampled and blended: the original's box is a plain copy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .canvas import CanvasPlan


def _canvas_coords(plan: CanvasPlan) -> tuple[torch.Tensor, torch.Tensor]:
    """grid_sample coordinates (align_corners=False) of every output row and column on the canvas, float64 on
    the CPU for exact coordinates (MPS has no float64): ``([OH], [OW])``."""
    (fh, fw), (oh, ow) = plan.frame_hw, plan.output_hw
    by, bx, bh, bw = plan.content_box
    ch, cw = plan.canvas_hw
    oy = torch.arange(oh, dtype=torch.float64) + 0.5
    ox = torch.arange(ow, dtype=torch.float64) + 0.5
    cy = by + (oy - plan.content_out_yx[0]) * (bh / fh)  # canvas pixel-edge coordinates
    cx = bx + (ox - plan.content_out_yx[1]) * (bw / fw)
    return (cy / ch) * 2 - 1, (cx / cw) * 2 - 1


def feather_weights(plan: CanvasPlan, feather: int, device=None, rows: slice = slice(None),
                    cols: slice = slice(None)) -> torch.Tensor:
    """``[OH, OW]`` weight of the generated pixels (or of the ``rows`` x ``cols`` window): 0 inside the
    original, rising to 1 at ``feather`` px out."""
    oh, ow = plan.output_hw
    y0, x0 = plan.content_out_yx
    y1, x1 = y0 + plan.frame_hw[0], x0 + plan.frame_hw[1]
    ys = torch.arange(oh, dtype=torch.float32, device=device)[rows]
    xs = torch.arange(ow, dtype=torch.float32, device=device)[cols]
    dy = torch.clamp(torch.maximum(y0 - ys, ys - (y1 - 1)), min=0)
    dx = torch.clamp(torch.maximum(x0 - xs, xs - (x1 - 1)), min=0)
    dist = torch.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2)
    if feather <= 0:
        return (dist > 0).float()
    return torch.clamp(dist / float(feather), 0, 1)


STRIP_ROWS = 128


@dataclass(frozen=True)
class _Band:
    """One rectangle of the border: where it lies, where on the canvas it samples, how much of it is generated,
    and which original pixel (the nearest edge one) it blends towards."""
    rows: slice
    cols: slice
    grid: torch.Tensor    # [1, h, w, 2]
    weight: torch.Tensor  # [h, w, 1]
    edge_y: torch.Tensor  # [h] row of the original
    edge_x: torch.Tensor  # [w] column of the original


class CompositeLayout:
    """Everything the frames of one plan share (sampling grids, feather weights, edge indexes), computed once:
    the border split into the bands above, below, left and right of the original's box."""

    def __init__(self, plan: CanvasPlan, feather: int, device=None):
        self.plan, self.feather, self.device = plan, feather, torch.device(device or "cpu")
        (fh, fw), (oh, ow) = plan.frame_hw, plan.output_hw
        y0, x0 = plan.content_out_yx
        y1, x1 = y0 + fh, x0 + fw
        gy, gx = _canvas_coords(plan)
        rects = [(slice(0, y0), slice(0, ow)), (slice(y1, oh), slice(0, ow)),
                 (slice(y0, y1), slice(0, x0)), (slice(y0, y1), slice(x1, ow))]
        # strips of STRIP_ROWS rows: a frame's temporaries are then a few MB, not a whole band (a 1920x1167 band
        # above a 9:16 1080p frame made ~150 MB of them); every pixel is computed the same either way
        rects = [(slice(r, min(r + STRIP_ROWS, rows.stop)), cols) for rows, cols in rects
                 for r in range(rows.start, rows.stop, STRIP_ROWS)]
        self.bands = []
        for rows, cols in rects:
            if rows.stop <= rows.start or cols.stop <= cols.start:
                continue
            grid = torch.stack(torch.meshgrid(gy[rows], gx[cols], indexing="ij")[::-1], dim=-1)
            self.bands.append(_Band(
                rows, cols, grid.unsqueeze(0).float().to(self.device),
                feather_weights(plan, feather, self.device, rows, cols)[:, :, None],
                torch.clamp(torch.arange(rows.start, rows.stop, device=self.device) - y0, 0, fh - 1),
                torch.clamp(torch.arange(cols.start, cols.stop, device=self.device) - x0, 0, fw - 1)))

    def matches(self, plan: CanvasPlan, feather: int, device) -> bool:
        return self.plan == plan and self.feather == feather and self.device == torch.device(device)


def composite(original: torch.Tensor, generated: torch.Tensor, plan: CanvasPlan, feather: int = 8,
              out: Optional[torch.Tensor] = None, layout: Optional[CompositeLayout] = None) -> torch.Tensor:
    """original ``[N, H, W, C]`` and generated ``[N, gh, gw, C]`` (any resolution of the canvas) float 0..1
    -> ``[N, OH, OW, C]``; the original frame's pixels are copied unchanged into the content box.

    Frames are composited one at a time straight into the result (``out`` when given: a buffer of that shape
    and the original's dtype, e.g. reused chunk after chunk), so the peak is the result plus one frame's work.
    ``layout`` (a ``CompositeLayout`` of the same plan, feather and device) saves recomputing it per call."""
    n, fh, fw = original.shape[:3]
    if (fh, fw) != tuple(plan.frame_hw):
        raise ValueError(f"original frames are {fw}x{fh}, the canvas plan was made for {plan.frame_hw[1]}x{plan.frame_hw[0]}")
    if generated.shape[0] != n:
        raise ValueError(f"{generated.shape[0]} generated frames for {n} original frames")
    if layout is None:
        layout = CompositeLayout(plan, feather, original.device)
    elif not layout.matches(plan, feather, original.device):
        raise ValueError("the composite layout was made for another plan, feather or device")
    y0, x0 = plan.content_out_yx
    shape = (n, *plan.output_hw, original.shape[-1])
    if out is None:
        out = torch.empty(shape, dtype=original.dtype, device=original.device)
    elif tuple(out.shape) != shape or out.dtype != original.dtype:
        raise ValueError(f"out is {tuple(out.shape)} {out.dtype}; the composite is {shape} {original.dtype}")
    for i in range(n):  # one frame at a time keeps 4K videos within memory
        gen = generated[i:i + 1].permute(0, 3, 1, 2).float()
        source = original[i].float()
        for band in layout.bands:
            resampled = F.grid_sample(gen, band.grid, mode="bicubic", padding_mode="border",
                                      align_corners=False).clamp(0, 1).permute(0, 2, 3, 1)[0]
            # Edge-extended original: what the seam blends towards, so the border meets the frame without a step.
            edge = source[band.edge_y][:, band.edge_x]
            out[i, band.rows, band.cols] = (band.weight * resampled + (1 - band.weight) * edge).to(original.dtype)
        out[i, y0:y0 + fh, x0:x0 + fw] = original[i]
    return out


def output_to_canvas(image: torch.Tensor, plan: CanvasPlan, base: torch.Tensor) -> torch.Tensor:
    """The inverse of the composite's resample: an output frame ``[OH, OW, 3]`` (e.g. a key frame edited at
    native resolution) brought onto the working canvas ``[ch, cw, 3]`` by the plan's affine map (antialiased
    bilinear), over ``base`` (the canvas it replaces) where the output does not reach."""
    (fh, fw), (oh, ow) = plan.frame_hw, plan.output_hw
    by, bx, bh, bw = plan.content_box
    ch, cw = plan.canvas_hw
    sy, sx = bh / fh, bw / fw
    top, left = by - plan.content_out_yx[0] * sy, bx - plan.content_out_yx[1] * sx  # the output's canvas box
    h, w = max(1, round(oh * sy)), max(1, round(ow * sx))
    small = F.interpolate(image.permute(2, 0, 1)[None].float(), size=(h, w), mode="bilinear", antialias=True,
                          align_corners=False)[0].permute(1, 2, 0).clamp(0, 1)
    out = base.clone().float()
    y0, x0 = round(top), round(left)
    cy0, cx0 = max(0, y0), max(0, x0)
    cy1, cx1 = min(ch, y0 + h), min(cw, x0 + w)
    if cy1 > cy0 and cx1 > cx0:
        out[cy0:cy1, cx0:cx1] = small[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    return out
