"""Writes each example workflow's template thumbnail, workflows/<name>.jpg: a before/after frame of the demo clip.

ComfyUI serves a custom node's workflows/ folder as templates (Workflow -> Browse Templates -> ComfyUI-M3DDM) and
the frontend shows /api/workflow_templates/<pack>/<name>.jpg as each template's picture. "before" is frame FRAME of
workflows/media/m3ddm_demo_clip.mp4 (208x120); "after" is that frame on the workflow's output canvas (the target
of its M3DDM Outpaint Canvas / M3DDM Outpaint Video node, 9:16 for the shipped ones) with the border filled by the
plugin's own prefill (OpenCV TELEA on the working canvas, m3ddm_core.build_canvas) and composited at native
resolution as M3DDM Composite does. No model runs: the border is the TELEA fill the model starts from, not a model's
result. Run it after changing a workflow's target or the clip: `python scripts/build_thumbnails.py`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
WORKFLOWS = REPO / "workflows"
CLIP = WORKFLOWS / "media" / "m3ddm_demo_clip.mp4"
FRAME = 8  # within every workflow's frames (the short clip's are 0-15)
SIZE = (320, 320)  # thumbnail (width, height); the template cards crop to about a square
BACKGROUND = (24, 24, 24)
# Where the two pictures go (x, y, w, h), each above its label (the labels at the bottom: newer frontends put a
# badge over the card's top left corner): "before" scaled to BEFORE_WIDTH on the left, "after" scaled to
# AFTER_HEIGHT on the right, both centred in their half.
BEFORE_WIDTH, AFTER_HEIGHT, LABEL_Y = 150, 270, 310
QUALITY = 85
TARGET_NODES = ("M3DDM_OutpaintCanvas", "M3DDM_OutpaintVideo")


def read_frame(path: Path = CLIP, index: int = FRAME) -> np.ndarray:
    """Frame ``index`` of the clip, ``[H, W, 3]`` uint8 RGB."""
    import av
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb24")
    raise ValueError(f"{path} has no frame {index}")


def target(workflow: dict) -> dict:
    """plan_canvas's target from the workflow's canvas node widgets: target, aspect_ratio, width, height, pad_left,
    pad_right, pad_top, pad_bottom, canvas_mode (the first nine widget values of both nodes)."""
    node = next((n for n in workflow["nodes"] if n["type"] in TARGET_NODES), None)
    if node is None:
        raise ValueError("the workflow has no M3DDM Outpaint Canvas or M3DDM Outpaint Video node")
    kind, ratio, width, height, left, right, top, bottom, mode = node["widgets_values"][:9]
    if kind == "aspect ratio":
        spec = {"ratio": ratio}
    elif kind == "size":
        spec = {"size": (int(height), int(width))}
    else:
        spec = {"padding": (left, right, top, bottom)}
    return dict(spec, mode=mode)


def outpaint_prefill(frame: np.ndarray, spec: dict) -> np.ndarray:
    """The frame on its output canvas, ``[OH, OW, 3]`` uint8: the border is the working canvas's TELEA prefill,
    brought to native resolution and blended in by the composite (the frame's own pixels unchanged)."""
    import torch
    from m3ddm_core import build_canvas, composite, plan_canvas
    plan = plan_canvas(frame.shape[:2], even=True, **spec)
    prefilled, _ = build_canvas(frame, plan)
    original = torch.from_numpy(frame).float()[None] / 255
    generated = torch.from_numpy(prefilled).float()[None] / 255
    out = composite(original, generated, plan)[0]
    return (out.clamp(0, 1) * 255).round().byte().numpy()


def boxes(before_hw: tuple[int, int], after_hw: tuple[int, int]) -> tuple[tuple, tuple]:
    """(x, y, w, h) of the scaled "before" and "after" pictures in the thumbnail."""
    W, H = SIZE
    bw = BEFORE_WIDTH
    bh = round(before_hw[0] * bw / before_hw[1])
    ah = AFTER_HEIGHT
    aw = round(after_hw[1] * ah / after_hw[0])
    if aw > W // 2 - 8:  # a landscape output: fit the half's width instead
        aw = W // 2 - 8
        ah = round(after_hw[0] * aw / after_hw[1])
    top, bottom = 8, LABEL_Y - 18  # the pictures' band, above the labels
    before = ((W // 2 - bw) // 2, top + (bottom - top - bh) // 2, bw, bh)
    after = (W // 2 + (W // 2 - aw) // 2, top + (bottom - top - ah) // 2, aw, ah)
    return before, after


def _label(image: np.ndarray, text: str, centre_x: int) -> None:
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    (tw, _), _ = cv2.getTextSize(text, font, scale, thick)
    cv2.putText(image, text, (centre_x - tw // 2, LABEL_Y), font, scale, (230, 230, 230), thick, cv2.LINE_AA)


def thumbnail(workflow: dict, frame: np.ndarray) -> np.ndarray:
    """The thumbnail, ``[H, W, 3]`` uint8 RGB."""
    after = outpaint_prefill(frame, target(workflow))
    (bx, by, bw, bh), (ax, ay, aw, ah) = boxes(frame.shape[:2], after.shape[:2])
    image = np.full((SIZE[1], SIZE[0], 3), BACKGROUND, dtype=np.uint8)
    image[by:by + bh, bx:bx + bw] = cv2.resize(frame, (bw, bh), interpolation=cv2.INTER_AREA)
    image[ay:ay + ah, ax:ax + aw] = cv2.resize(after, (aw, ah), interpolation=cv2.INTER_AREA)
    _label(image, "before", SIZE[0] // 4)
    _label(image, "after", 3 * SIZE[0] // 4)
    return image


def write(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    assert ok
    path.write_bytes(data.tobytes())


if __name__ == "__main__":
    source = read_frame()
    for wf in sorted(WORKFLOWS.glob("*.json")):
        out = wf.with_suffix(".jpg")
        write(out, thumbnail(json.loads(wf.read_text()), source))
        print("wrote", out, f"({out.stat().st_size // 1024} KB)")
