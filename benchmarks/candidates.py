"""Candidate speed-ups measured against the current path in one run: keep or drop them with numbers.

Each line times one guided UNet step (3 branches batched, 16 frames at 32x32 latents) of the chosen config
with random weights, and prints its ratio to the baseline and the max output difference:
- pseudo-3D convolutions as conv3d on the video layout vs per-frame conv2d + per-pixel conv1d (``CONV3D_DEVICES``),
  for one layer in fp32 / bf16 / fp16 and for the whole step;
- bf16 weights and activations vs fp32 (on the CPU);
- ``torch.compile`` of the UNet (``--compile``; slow to compile);
- VAE decode batch size (``--vae``; a random full-size SD VAE from diffusers, 16 frames at 256x256).
Usage: ``python benchmarks/candidates.py [--config medium] [--device cpu] [--compile] [--vae]``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from clip_speed import CONFIGS, random_model  # noqa: E402
from m3ddm_core import build_unet  # noqa: E402
from m3ddm_core.model import unet3d  # noqa: E402
from m3ddm_core.pipeline.guidance import ClipConditioning, GuidedDenoiser  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats: int):
    """Best of ``repeats`` after one warm-up call; returns (output, seconds)."""
    out = fn()
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return out, best


def step_inputs(model, device, dtype):
    """A fixed guided step's inputs (3 branches, 16 frames at 32x32) on seeded random data: ``(cond, x)``."""
    g = torch.Generator().manual_seed(0)
    z = lambda *s: (torch.randn(*s, generator=g) * 0.8).to(device, dtype)  # noqa: E731
    tokens = model.encode_global(z(16, 4, 32, 32))
    uncond_tokens = model.encode_global(torch.zeros(16, 4, 32, 32, device=device, dtype=dtype))
    cond = ClipConditioning(masked_latents=z(1, 4, 16, 32, 32), mask=(z(1, 1, 16, 32, 32) > 0).to(dtype),
                            uncond_latents=z(1, 4, 16, 32, 32),
                            uncond_mask=torch.ones(1, 1, 16, 32, 32, device=device, dtype=dtype),
                            global_tokens=tokens, uncond_global_tokens=uncond_tokens)
    return cond, z(1, 4, 16, 32, 32)


def guided_step(model, device, dtype):
    cond, x = step_inputs(model, device, dtype)
    denoiser = GuidedDenoiser(model, cond, 2.0, 4.0)

    def run():
        with torch.no_grad():
            return denoiser(x, 500, 8).float()
    return run


def report(name, base, t, out=None, ref=None):
    diff = "" if out is None else f"  max|diff| {(out - ref).abs().max().item():.2e}"
    print(f"{name:<50} {t:8.2f} s  {base / t:5.2f}x{diff}", flush=True)


def layer_candidates(args, device):
    """One pseudo-3D conv layer (medium top level: 128 channels, 3 x 16 frames at 32x32), both routes, per dtype."""
    torch.manual_seed(0)
    print(f"pseudo-3D conv layer, 128 channels, [3, 128, 16, 32, 32] ({device})")
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        conv = unet3d.Pseudo3DConv(128, 128, unet3d.TORCH_OPS, device=device, dtype=dtype).requires_grad_(False)
        x = torch.randn(3, 128, 16, 32, 32, device=device, dtype=dtype)
        with torch.no_grad():
            ref, t_frame = timed(lambda: conv.forward_per_frame(x), device, args.repeats)
            out, t_3d = timed(lambda: conv.forward_conv3d(x), device, args.repeats)
        name = str(dtype).replace("torch.", "")
        report(f"{name}: per-frame conv2d + conv1d (baseline)", t_frame, t_frame)
        report(f"{name}: conv3d", t_frame, t_3d, out.float(), ref.float())


def unet_candidates(args, device):
    model = random_model(args.config, device)
    print(f"config={args.config} device={device} threads={torch.get_num_threads()} (one guided step, 3 branches)")
    saved = set(unet3d.CONV3D_DEVICES)
    try:
        unet3d.CONV3D_DEVICES.discard(device.type)
        per_frame, t_base = timed(guided_step(model, device, torch.float32), device, args.repeats)
        report("fp32, per-frame conv2d + conv1d (baseline)", t_base, t_base)
        unet3d.CONV3D_DEVICES.add(device.type)
        out, t = timed(guided_step(model, device, torch.float32), device, args.repeats)
        report("fp32, conv3d pseudo-3D", t_base, t, out, per_frame)
    finally:
        unet3d.CONV3D_DEVICES.clear()
        unet3d.CONV3D_DEVICES.update(saved)
    current, t_current = timed(guided_step(model, device, torch.float32), device, args.repeats)
    report(f"fp32, current route ({'conv3d' if device.type in saved else 'per-frame'})", t_base, t_current,
           current, per_frame)
    half = torch.float16 if device.type == "cuda" else torch.bfloat16
    model16 = build_unet(CONFIGS[args.config], device=device, dtype=half).requires_grad_(False)
    model16.load_state_dict(model.state_dict())
    out, t = timed(guided_step(model16, device, half), device, args.repeats)
    report(f"{str(half).replace('torch.', '')}, current route", t_base, t, out, current)
    if args.compile:
        model.forward = torch.compile(model.forward)  # the instance attribute wins over the class method
        try:
            t0 = time.perf_counter()
            guided_step(model, device, torch.float32)()
            print(f"torch.compile: first call (compiling) {time.perf_counter() - t0:.1f} s", flush=True)
            out, t = timed(guided_step(model, device, torch.float32), device, args.repeats)
            report("fp32, torch.compile (ratio to the current route)", t_current, t, out, current)
        finally:
            del model.forward


def vae_candidates(args, device):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                        norm_num_groups=32).to(device).eval().requires_grad_(False)
    latents = torch.randn(16, 4, 32, 32, device=device)
    print(f"VAE decode, 16 frames at 256x256 (random full-size SD VAE, {device})")
    base = None
    for batch in (1, 4, 16):
        def run():
            with torch.no_grad():
                return torch.cat([vae.decode(latents[i:i + batch]).sample for i in range(0, 16, batch)])
        _, t = timed(run, device, 1)
        base = base or t
        report(f"decode batch {batch}", base, t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="medium")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (minutes to compile on a CPU)")
    ap.add_argument("--vae", action="store_true", help="also time VAE decode batch sizes")
    ap.add_argument("--no-unet", action="store_true", help="skip the UNet candidates")
    args = ap.parse_args()
    device = torch.device(args.device)
    layer_candidates(args, device)
    if not args.no_unet:
        unet_candidates(args, device)
    if args.vae:
        vae_candidates(args, device)


if __name__ == "__main__":
    main()
