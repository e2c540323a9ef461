"""Returning camera set-ups: how much the invented border changes where a set-up comes back, with and without
grouping its shots (issue 33).

The edit: A = the shipped clip's frames 0-15, B = 16 frames of another set-up (the clip mirrored, hue turned),
A' = the clip's frames 17-32 (the same camera, a moment later). Outpainted to 9:16 by the tiny reference UNet
(``../shared/m3ddm_reference/tiny_unet``, the parity tests' model) through the core's entry, once with every shot
on its own and once with A and A' grouped (shared global frames and seed). Printed: the mean CIE Lab difference
(Delta E 1976) of the generated band between A's last frame and A''s first, next to the same measure between two
consecutive frames inside A (what a continuous shot changes) -- lower is a border that holds when the set-up
returns. Without ``--model``/``--vae`` the tiny UNet (a fixture, not a trained model) and a random 8x VAE make a
border of noise whose Delta E between any two frames is large: the figures then only show that the run goes
through; the measure means something with the real weights: ``--model models/m3ddm/M3DDM-Video-Outpainting --vae
models/vae/vae-ft-mse-840000-ema-pruned.safetensors`` (a GPU: ``--device cuda``).

Usage: ``python benchmarks/setups.py [--steps 20] [--size 128] [--model PATH --vae PATH] [--device cuda]``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers import TinyVAE, load_clip  # noqa: E402
from m3ddm_core import Runtime, SampleSettings, build_unet, composite, plan_canvas, prepare, sample  # noqa: E402

TINY = ROOT.parent / "shared" / "m3ddm_reference" / "tiny_unet" / "weights.safetensors"


def other_set_up(frames: torch.Tensor) -> torch.Tensor:
    """The clip mirrored with its hue turned by a third: another set-up of the same length."""
    out = []
    for f in frames.flip(2).numpy():
        hsv = cv2.cvtColor((f * 255).astype(np.uint8), cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(int) + 60) % 180
        out.append(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32) / 255.0)
    return torch.from_numpy(np.stack(out))


def band_delta_e(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean Delta E 1976 between two ``[H, W, 3]`` float 0..1 frames over ``mask`` (the generated band)."""
    la, lb = (cv2.cvtColor(x.astype(np.float32), cv2.COLOR_RGB2Lab) for x in (a, b))
    return float(np.linalg.norm(la - lb, axis=-1)[mask].mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--size", type=int, default=128, help="working canvas")
    ap.add_argument("--model", type=Path, help="real M3DDM weights (default: the tiny reference UNet)")
    ap.add_argument("--vae", type=Path, help="the SD 1.x VAE for --model")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.model is not None:
        from m3ddm_core import load_model
        from m3ddm_core.apps.jobs import load_vae, vae_functions
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        model = load_model(args.model, dtype, device).unet
        encode, decode = vae_functions(load_vae(args.vae, device, dtype))
    else:
        from safetensors.torch import load_file
        config = json.loads((ROOT / "tests" / "data" / "tiny_unet_config.json").read_text())
        model = build_unet(config).to(device)
        model.load_state_dict(load_file(str(TINY)), strict=True)
        vae = TinyVAE()
        encode, decode = vae.encode, vae.decode
    clip = load_clip(33)
    frames = torch.cat([clip[:16], other_set_up(clip[:16]), clip[17:33]])  # A 0-15, B 16-31, A' 32-47
    cuts, n = [16, 32], 48
    plan = plan_canvas((120, 208), ratio="9:16", canvas_size=args.size)
    settings = SampleSettings(steps=args.steps, scheduler="ddim")
    mask = np.ones(plan.output_hw, bool)
    (y0, x0), (h, w) = plan.content_out_yx, plan.frame_hw
    mask[y0:y0 + h, x0:x0 + w] = False
    rows = {}
    for name, groups in (("each shot on its own", None), ("A and A' grouped", [0, 1, 0])):
        video = prepare(frames, n, plan, encode, settings, 16.0, seed=1, strides="15,5,1", cuts=cuts,
                        groups=groups)
        result = sample(video, Runtime.fixed(model), decode=decode)
        out = composite(frames, result.canvases, plan, feather=0).numpy()
        rows[name] = (band_delta_e(out[15], out[32], mask), band_delta_e(out[14], out[15], mask))
    print(f"{args.model or 'tiny reference UNet'}, {args.steps} DDIM steps, working canvas {args.size}, edit A(16) B(16) A'(16)")
    print(f"{'':24} {'A end -> A' + chr(39) + ' start':>18} {'inside A':>10}   (mean Delta E of the generated band)")
    for name, (ret, inside) in rows.items():
        print(f"{name:24} {ret:18.2f} {inside:10.2f}")
    own, grouped = rows["each shot on its own"][0], rows["A and A' grouped"][0]
    print(f"grouped / own at the return: {grouped / own:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
