"""Cost of a whole video against its length: VAE encodes, UNet calls and time for N frames.

The optimized pipeline encodes each frame's two canvases once (a cache) and runs one pass per window; the
official code re-encodes all 16 frames (and the 16 global frames) in every window. Both counts are printed, with
the measured time of the optimized pipeline. Usage:
``python benchmarks/video_scaling.py [--config tiny] [--frames 16 64 256] [--steps 1] [--device cpu]``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from clip_speed import CONFIGS  # noqa: E402
from m3ddm_core import DTYPES, SampleSettings, build_unet, outpaint_video, plan_canvas  # noqa: E402
from m3ddm_core.pipeline.schedule import official_window_schedule, plan_schedule  # noqa: E402


class ConvVAE(nn.Module):
    """A random 8x conv autoencoder standing in for the SD VAE (its cost is not what is measured here)."""

    def __init__(self, device):
        super().__init__()
        self.enc = nn.Conv2d(3, 4, 8, stride=8).to(device)
        self.dec = nn.ConvTranspose2d(4, 3, 8, stride=8).to(device)
        self.device = device
        self.encoded_images = 0

    @torch.no_grad()
    def encode(self, pixels):
        self.encoded_images += pixels.shape[0]
        return self.enc(pixels.to(self.device).permute(0, 3, 1, 2) * 2 - 1) * 0.18215

    @torch.no_grad()
    def decode(self, latents):
        return torch.sigmoid(self.dec(latents.to(self.device) / 0.18215)).permute(0, 2, 3, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    ap.add_argument("--frames", type=int, nargs="+", default=[16, 64, 256])
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--strides", default="auto")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype or ("fp16" if device.type == "cuda" else "fp32")]
    torch.manual_seed(0)
    model = build_unet(CONFIGS[args.config], device=device, dtype=dtype).requires_grad_(False)
    settings = SampleSettings(steps=args.steps)
    print(f"config={args.config} device={device} dtype={dtype} steps={args.steps} strides={args.strides}")
    print(f"{'frames':>7} {'passes':>6} {'denoise_steps':>13} {'vae_enc':>8} {'official_vae_enc':>16} "
          f"{'seconds':>8} {'s/frame':>8}")
    for n in args.frames:
        frames = torch.rand(n, 120, 208, 3, generator=torch.Generator().manual_seed(n))
        plan = plan_canvas((120, 208), ratio="9:16")
        vae = ConvVAE(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        result = outpaint_video(model, frames, plan, vae.encode, vae.decode, fps=24, settings=settings,
                                strides=args.strides)
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        passes = len(plan_schedule(n, args.strides))
        official = 33 * max(1, len(official_window_schedule(n)))  # 16 clip + 16 global + 1 uncond per window
        print(f"{n:>7} {passes:>6} {result.denoising_steps:>13} {vae.encoded_images:>8} {official:>16} "
              f"{dt:>8.2f} {dt / n:>8.4f}")


if __name__ == "__main__":
    main()
