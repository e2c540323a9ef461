"""Canvas geometry and the model's inputs: where the frame lies on the working canvas and in the output.

``plan_canvas`` decides the geometry once per video (no pixels); ``build_canvas`` makes one frame's two model
inputs: the *masked* canvas (content on black) and the *prefilled* canvas (the black area filled by OpenCV's
TELEA inpainting, radius 5), as the official code does. Layout: frames are ``[H, W, 3]`` float in 0..1 or uint8.

Model families (``family``), the same geometry, other preprocessing:
- ``m3ddm``: the content is resized with OpenCV's bilinear ``cv2.resize``; the 16 global frames are the masked
  canvases (as the official M3DDM code).
- ``m3ddm_plus``: as the M3DDM+ authors' code: the content is resized with PyTorch's antialiased bilinear resize
  (what ``torchvision.transforms.Resize(antialias=True)`` runs), and the global frames are the *source frames*
  squashed to ``canvas_size`` x ``canvas_size`` the same way. Its working size (``canvas_size``, the canvas's side)
  is the authors' ``output_size``: any multiple of 8, e.g. 128-512. The authors' canvas comes out 1-2 px short of
  it for a third of the common sizes and then fails ("divisible by 8"); here it is always the working size, the
  content centred on it.

Modes:
- ``official`` (default): the official 256x256 square canvas; the output region is centred on it, the content
  scaled so that the output's long side spans 256 px. Area of the square outside the output region is generated
  and cropped away (that is how the model was trained and run).
- ``tight``: a canvas of the output's aspect, each side a multiple of 64, about 256x256 in area; the output region
  fills it (a few percent of anisotropic scale absorb the rounding). Outside the training distribution.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import cv2
import numpy as np

from ..model.loader import FAMILIES

OFFICIAL_CANVAS = 256
TELEA_RADIUS = 5
LATENT_FACTOR = 8
MIN_CONTENT_PX = 16  # two latent pixels: less than that leaves the model nothing to extend

RatioSpec = Union[str, Sequence[str]]


class CanvasError(ValueError):
    """A target or frame size that cannot be outpainted; the message says what to change."""


def parse_ratio(text: str) -> float:
    """``"16:9"`` -> 16/9. Anything else is a :class:`CanvasError` that shows the expected form."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*", str(text))
    if not m:
        raise CanvasError(f"aspect ratio {text!r} is not of the form W:H (for example 16:9 or 9:16)")
    w, h = float(m.group(1)), float(m.group(2))
    if w <= 0 or h <= 0:
        raise CanvasError(f"aspect ratio {text!r} has a zero side; use positive numbers such as 16:9")
    return w / h


def parse_ratio_list(spec: RatioSpec) -> list[str]:
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    items = [s for s in items if s]
    if not items:
        raise CanvasError("no target aspect ratio given; use for example 16:9 or 16:9,9:16")
    for s in items:
        parse_ratio(s)
    return items


@dataclass(frozen=True)
class CanvasPlan:
    """Geometry of one video's outpainting (all boxes are ``(y, x, h, w)`` in integer pixels).

    frame_hw: source frame size. output_hw: native-resolution result size; content_out_yx: where the source
    frame lies in it. canvas_hw: the working canvas the model sees (multiples of 64); content_box: the scaled
    frame on the canvas. Output pixel ``(oy, ox)`` maps to canvas ``content_box.y + (oy - content_out.y) *
    content_box.h / frame_h`` (same for x) -- one affine map for both directions.
    """

    frame_hw: tuple[int, int]
    output_hw: tuple[int, int]
    content_out_yx: tuple[int, int]
    canvas_hw: tuple[int, int]
    content_box: tuple[int, int, int, int]
    mode: str = "official"
    family: str = "m3ddm"  # the preprocessing of the model family (module docstring)

    @property
    def latent_hw(self) -> tuple[int, int]:
        return self.canvas_hw[0] // LATENT_FACTOR, self.canvas_hw[1] // LATENT_FACTOR

    def pixel_mask(self) -> np.ndarray:
        """``[ch, cw]`` float32, 1 = to generate, 0 = source content."""
        mask = np.ones(self.canvas_hw, dtype=np.float32)
        y, x, h, w = self.content_box
        mask[y:y + h, x:x + w] = 0
        return mask

    def to_dict(self) -> dict:
        out = {"frame_hw": list(self.frame_hw), "output_hw": list(self.output_hw),
               "content_out_yx": list(self.content_out_yx), "canvas_hw": list(self.canvas_hw),
               "content_box": list(self.content_box), "mode": self.mode}
        if self.family != "m3ddm":  # only then: the resume keys of M3DDM runs stay what they were
            out["family"] = self.family
        return out

    @property
    def working_size(self) -> int:
        """The side the global frames are squashed to (M3DDM+), the canvas's long side."""
        return max(self.canvas_hw)


def max_target_size(frame_hw: tuple[int, int], ratios: Sequence[str]) -> tuple[float, float]:
    """The official union of the target ratios: grow the frame's short axis for each ratio (floats)."""
    h, w = frame_hw
    cur = w / h
    max_h, max_w = h, w
    for text in ratios:
        a, b = text.split(":")
        target = float(a) / float(b)
        if cur < target:
            max_w = max(max_w, target * h)
        else:
            max_h = max(max_h, w / target)
    return max_h, max_w


def _output_from_target(frame_hw, ratio=None, size=None, padding=None, even=False):
    """Native output size and content offset for exactly one kind of target. ``even``: a ratio target's output
    grows by a pixel on any odd side (right or bottom), as video encoders need; the frame itself is untouched."""
    h, w = frame_hw
    given = [t is not None for t in (ratio, size, padding)]
    if sum(given) != 1:
        raise CanvasError("give exactly one target: an aspect ratio, an output size, or per-side padding")
    if ratio is not None:
        ratios = parse_ratio_list(ratio)
        mh, mw = max_target_size(frame_hw, ratios)
        out = (_grow_to(mh, h), _grow_to(mw, w))
        if even:
            out = (out[0] + out[0] % 2, out[1] + out[1] % 2)
        return out, ((out[0] - h) // 2, (out[1] - w) // 2), ratios
    if size is not None:
        oh, ow = (int(size[0]), int(size[1]))
        if oh < h or ow < w:
            axis = "height" if oh < h else "width"
            raise CanvasError(f"output size {ow}x{oh} (WxH) is smaller than the frame ({w}x{h}) in {axis}: outpainting "
                              "only adds border, it never crops. Choose a size at least as large as the frame on both axes.")
        return (oh, ow), ((oh - h) // 2, (ow - w) // 2), None
    left, right, top, bottom = (_pad_px(v, w if i < 2 else h, name)
                                for i, (v, name) in enumerate(zip(padding, ("left", "right", "top", "bottom"))))
    if left + right + top + bottom == 0:
        raise CanvasError("all paddings are 0: nothing to outpaint; give at least one side a positive padding")
    return (h + top + bottom, w + left + right), (top, left), None


def _grow_to(target: float, extent: int) -> int:
    """The output extent for a float target: within one pixel of it, and growing ``extent`` by an even number
    of pixels so the frame sits exactly centred (and even frames give even outputs, as video encoders need)."""
    if target <= extent + 0.5:
        return extent
    base = int(math.floor(target))
    options = [c for c in (base - 1, base, base + 1, base + 2) if c >= extent and (c - extent) % 2 == 0]
    return min(options, key=lambda c: abs(c - target))


def _pad_px(value, extent: int, name: str) -> int:
    if value is None:
        return 0
    v = float(value)
    if v < 0 or not math.isfinite(v):
        raise CanvasError(f"padding {name} = {value} is negative; outpainting only adds border (use 0 for none)")
    # Values below 1 (and not 0) are fractions of the frame's extent on that axis; 1 and more are pixels.
    return int(round(v * extent)) if 0 < v < 1 else int(round(v))


# The working size (the square canvas's side): a multiple of 8 (the VAE works in 8x8 pixel blocks); 256 is what
# M3DDM was trained at. Every front-end takes these limits (the nodes show them in their schemas).
WORKING_SIZES = range(64, 1024 + 1, 8)  # multiples of 8 (the VAE's 8x8 pixel blocks)


def check_working_size(size: int, mode: str = "official") -> int:
    """``size`` if it is a working size for a canvas of ``mode``, else a CanvasError saying which are."""
    if mode == "tight" and (size < 64 or size % 64):
        raise CanvasError(f"working size {size} must be a multiple of 64 for the tight canvas (its sides are)")
    if size not in WORKING_SIZES:
        raise CanvasError(f"working size {size} must be a multiple of {WORKING_SIZES.step} from {WORKING_SIZES[0]} "
                          f"to {WORKING_SIZES[-1]} (the VAE works in 8x8 pixel blocks), e.g. 128, 256 or 512")
    return int(size)


def plan_canvas(frame_hw: tuple[int, int], ratio: Optional[RatioSpec] = None, size: Optional[tuple[int, int]] = None,
                padding: Optional[Sequence[float]] = None, mode: str = "official",
                canvas_size: int = OFFICIAL_CANVAS, even: bool = False, family: str = "m3ddm") -> CanvasPlan:
    """Plan the outpainting of frames of ``frame_hw = (H, W)``.

    Exactly one target: ``ratio`` (``"16:9"`` or the official list ``"16:9,9:16"``), ``size`` = output ``(H, W)``,
    or ``padding`` = ``(left, right, top, bottom)`` in pixels, or fractions of the frame size when below 1.
    ``canvas_size``: the working size: side of the official square canvas (a multiple of 8; 256 = as M3DDM was
    trained) / area scale of the tight one (a multiple of 64). ``family``: the model family's preprocessing
    (``m3ddm`` or ``m3ddm_plus``, see the module docstring); it does not change the geometry.
    ``even``: a ratio target's output is rounded up to even sides (a video file's output; an odd frame such as
    321x179 has no even output of an exact ratio). Sizes and paddings are the user's own: :func:`check_even`.
    """
    if family not in FAMILIES:
        raise CanvasError(f"model family {family!r} is unknown; use one of {', '.join(FAMILIES)}")
    check_working_size(canvas_size, mode)
    h, w = int(frame_hw[0]), int(frame_hw[1])
    if h < 1 or w < 1:
        raise CanvasError(f"frame size {w}x{h} is empty")
    (oh, ow), (cy, cx), ratios = _output_from_target((h, w), ratio, size, padding, even)
    if (oh, ow) == (h, w):
        raise CanvasError(f"the {w}x{h} frame already has the target shape: nothing to outpaint. Choose a ratio or size "
                          "that adds border (e.g. 9:16 for a landscape frame)")
    if mode == "official":
        n = canvas_size
        if ratios is not None:
            # The official arithmetic, kept float-for-float so that boxes match it to the pixel.
            mh, mw = max_target_size((h, w), ratios)
            max_dim = max(mh, mw)
            rh, rw = min(int(n / max_dim * h), n), min(int(n / max_dim * w), n)
            box = ((n - rh) // 2, (n - rw) // 2, rh, rw)
        else:
            s = n / max(oh, ow)
            rh, rw = min(int(s * h), n), min(int(s * w), n)
            y0, x0 = (n - oh * s) / 2, (n - ow * s) / 2
            box = (min(int(round(y0 + cy * s)), n - rh), min(int(round(x0 + cx * s)), n - rw), rh, rw)
        canvas = (n, n)
    elif mode == "tight":
        canvas = tight_canvas_hw(oh / ow, canvas_size ** 2)
        sy, sx = canvas[0] / oh, canvas[1] / ow
        rh, rw = max(1, int(round(h * sy))), max(1, int(round(w * sx)))
        box = (min(int(round(cy * sy)), canvas[0] - rh), min(int(round(cx * sx)), canvas[1] - rw), rh, rw)
    else:
        raise CanvasError(f"canvas mode {mode!r} is unknown; use {' or '.join(CANVAS_MODES)}")
    if box[2] < MIN_CONTENT_PX or box[3] < MIN_CONTENT_PX:
        raise CanvasError(f"the frame would cover only {box[3]}x{box[2]} px of the {canvas[1]}x{canvas[0]} working "
                          f"canvas (less than {MIN_CONTENT_PX} px on a side): the target adds far more border than the "
                          "model can extend from. Use a smaller padding or a ratio closer to the frame's.")
    return CanvasPlan((h, w), (oh, ow), (cy, cx), canvas, box, mode, family)


TARGETS = ("aspect ratio", "output size", "padding")  # how a front-end's user gives the output
CANVAS_MODES = ("official", "tight")  # the square the model was trained on, or one of the output's aspect


def plan_target(frame_hw: tuple[int, int], target: str, *, ratio: Optional[RatioSpec] = None,
                size: Optional[tuple[int, int]] = None, padding: Optional[Sequence[float]] = None,
                mode: str = "official", canvas_size: int = OFFICIAL_CANVAS, family: str = "m3ddm",
                video: bool = False) -> CanvasPlan:
    """:func:`plan_canvas` for the target a user chose (one of :data:`TARGETS`; the other two are ignored).
    ``video``: the output becomes a video file, so a ratio's output is rounded up to even sides and an odd size
    or padding is refused with what to change (:func:`check_even`)."""
    given = {"aspect ratio": {"ratio": ratio}, "output size": {"size": size}, "padding": {"padding": padding}}
    if target not in given:
        raise CanvasError(f"target {target!r} is unknown; choose one of {', '.join(TARGETS)}")
    plan = plan_canvas(frame_hw, mode=mode, canvas_size=canvas_size, even=video, family=family, **given[target])
    if video:
        check_even(plan)
    return plan


def odd_side(hw: tuple[int, int]) -> Optional[str]:
    """``"width"`` or ``"height"`` when that side of ``(H, W)`` is odd (the width first), else None: the one rule
    for video frame sizes (H.264/HEVC 4:2:0 need even sides)."""
    h, w = hw
    return "width" if w % 2 else "height" if h % 2 else None


def check_even(plan: CanvasPlan) -> None:
    """Refuse an output with an odd side (H.264/HEVC 4:2:0 need even ones) with what to change."""
    oh, ow = plan.output_hw
    side = odd_side((oh, ow))
    if side is not None:
        raise CanvasError(f"the output would be {ow}x{oh}; video encoders need even sides: make the output {side} "
                          f"(or the padding on one side) a pixel larger")


def tight_canvas_hw(aspect_hw: float, area: int = OFFICIAL_CANVAS ** 2) -> tuple[int, int]:
    """Canvas (h, w), multiples of 64, closest to ``aspect_hw = h/w`` with an area of at most 1.25x ``area``."""
    best = None
    limit = max(1024, int(math.sqrt(area) * 4))
    for ch in range(64, limit + 1, 64):
        for cw in range(64, limit + 1, 64):
            if ch * cw > area * 1.25:
                continue
            score = (abs(math.log((ch / cw) / aspect_hw)), -ch * cw)
            if best is None or score < best[0]:
                best = (score, (ch, cw))
    return best[1]


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame
    return np.clip(np.rint(frame.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)


def antialiased_resize(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """``[H, W, C]`` float32 -> ``[h, w, C]`` float32 by PyTorch's antialiased bilinear resize, what
    ``torchvision.transforms.Resize(antialias=True)`` does to a float tensor (M3DDM+'s preprocessing)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)
    out = F.interpolate(t, size=tuple(hw), mode="bilinear", align_corners=False, antialias=True)
    return out[0].permute(1, 2, 0).numpy()


def global_frame_pixels(frame: np.ndarray, plan: CanvasPlan) -> np.ndarray:
    """M3DDM+'s global frame: the source frame ``[H, W, 3]`` (uint8 or float 0..1) squashed to the working size,
    ``[S, S, 3]`` float32 0..1 (antialiased bilinear on ``frame / 255``, no rounding: as the authors' code)."""
    src = np.ascontiguousarray(frame[..., :3])
    src = src.astype(np.float32) / 255.0 if src.dtype == np.uint8 else src.astype(np.float32)
    s = plan.working_size
    return antialiased_resize(src, (s, s))


def build_canvas(frame: np.ndarray, plan: CanvasPlan) -> tuple[np.ndarray, np.ndarray]:
    """One frame ``[H, W, 3]`` (uint8, or float 0..1) -> ``(prefilled, masked)`` canvases, uint8 ``[ch, cw, 3]``."""
    y, x, h, w = plan.content_box
    src = _to_uint8(np.ascontiguousarray(frame[..., :3])).astype(np.float32)
    # As each family's code: bilinear resize in float (M3DDM+: antialiased), then truncation into uint8.
    content = antialiased_resize(src, (h, w)) if plan.family == "m3ddm_plus" else \
        cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR)
    masked = np.zeros((*plan.canvas_hw, 3), dtype=np.uint8)
    masked[y:y + h, x:x + w] = np.clip(content, 0, 255).astype(np.uint8)
    mask = np.ones(plan.canvas_hw, dtype=np.uint8)
    mask[y:y + h, x:x + w] = 0
    prefilled = cv2.inpaint(masked, mask, TELEA_RADIUS, cv2.INPAINT_TELEA)
    return prefilled, masked
