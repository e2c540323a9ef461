"""Time per 16-frame clip: the official computation order vs. this package's optimized path.

Same random weights, seed and inputs, measured in the same run:
- reference: the official order -- 4 guidance branches, the global-frame encoder re-run for all 4 branches at
  every step, the global tokens expanded to every frame with their K/V projected per frame, explicit softmax
  attention;
- optimized: 3 branches (the dropped e01 branch skipped), global tokens encoded once per video, their K/V
  projected once per clip, PyTorch SDPA.
Prints time per clip, the ratio, peak memory and the max output difference against the sampler-loop tolerance.
Usage: ``python benchmarks/clip_speed.py --config tiny|medium|full [--steps N] [--device cuda] [--dtype fp16]``.
The last line is ``speedup=<reference/optimized> maxdiff=<max abs diff> peak_mb=<optimized peak memory>``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the official computation (tests/reference.py)

from m3ddm_core import CLIP_FRAMES, DTYPES, FULL_SIZE_CONFIG, build_unet, sdpa_attention, softmax_attention  # noqa: E402
from m3ddm_core.pipeline.guidance import clip_conditioning  # noqa: E402
from reference import official_sampler_loop  # noqa: E402
from m3ddm_core.pipeline.sampler import sample_clip  # noqa: E402

CONFIGS = {
    "tiny": dict(FULL_SIZE_CONFIG, block_out_channels=[32, 64, 64, 64], norm_num_groups=8),
    "medium": dict(FULL_SIZE_CONFIG, block_out_channels=[128, 256, 512, 512], norm_num_groups=32),
    "full": dict(FULL_SIZE_CONFIG),
}
DEFAULT_STEPS = {"tiny": 4, "medium": 2, "full": 50}
FRAMES, LATENT = CLIP_FRAMES, 32  # one clip at the 256x256 canvas


def random_model(config: str, device, dtype=None):
    """A seeded random-weight UNet of ``CONFIGS[config]``, deep configs scaled to keep activations in range."""
    torch.manual_seed(0)
    model = build_unet(CONFIGS[config], device=device, dtype=dtype).requires_grad_(False)
    if config != "tiny":
        with torch.no_grad():
            for p in model.parameters():
                if p.ndim > 1:
                    p.mul_(0.5)
    return model


def make_inputs(device, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g).to(device)  # noqa: E731
    mask = torch.ones(LATENT, LATENT)
    mask[8:24, 4:28] = 0
    return {"start": r(1, 4, FRAMES, LATENT, LATENT) * 0.8, "masked": r(FRAMES, 4, LATENT, LATENT) * 0.8,
            "uncond": r(1, 4, LATENT, LATENT) * 0.8, "global": r(16, 4, LATENT, LATENT) * 0.8,
            "mask": mask.to(device), "noise": r(1, 4, FRAMES, LATENT, LATENT),
            "guides": {0: r(4, LATENT, LATENT) * 0.8, 15: r(4, LATENT, LATENT) * 0.8}}


def reference_clip(model, inp, steps, s1=2.0, s2=4.0, fps=8):
    """The official loop's computation (``tests/reference.py``, see module docstring) with explicit softmax."""
    model.set_attention(softmax_attention)
    cond = clip_conditioning(inp["masked"], inp["uncond"], inp["mask"], inp["guides"], None, None)
    with torch.no_grad():
        return official_sampler_loop(model, inp["start"], cond, inp["global"], inp["noise"], steps, s1, s2, fps)


def optimized_clip(model, inp, steps, s1=2.0, s2=4.0, fps=8):
    model.set_attention(sdpa_attention)
    with torch.no_grad():
        tokens = model.encode_global(inp["global"].to(model.dtype))
        uncond_tokens = model.encode_global(torch.zeros_like(inp["global"]).to(model.dtype))
    cond = clip_conditioning(inp["masked"], inp["uncond"], inp["mask"], inp["guides"], tokens, uncond_tokens)
    return sample_clip(model, inp["start"], cond, inp["noise"], fps, steps, s1, s2, "pndm")


def peak_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t0, peak_mb(device)


def branch_forward_flops(cfg) -> float:
    """FLOPs of one optimized 16-frame branch-forward at 32x32 latents (counted on the meta device)."""
    from torch.utils.flop_counter import FlopCounterMode
    model = build_unet(cfg, device="meta")
    tokens = model.encode_global(torch.zeros(16, 4, LATENT, LATENT, device="meta"))
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 9, FRAMES, LATENT, LATENT, device="meta"), 500, 8, model.project_global_tokens(tokens))
    return float(counter.get_total_flops())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="medium")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default=None)
    ap.add_argument("--skip-reference", action="store_true", help="time only the optimized path")
    ap.add_argument("--low-vram", action="store_true", help="optimized path with one UNet call per branch")
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype or ("fp16" if device.type == "cuda" else "fp32")]
    steps = args.steps or DEFAULT_STEPS[args.config]
    model = random_model(args.config, device, dtype)
    inp = make_inputs(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"config={args.config} params={n_params / 1e6:.1f}M device={device} dtype={dtype} steps={steps} "
          f"frames={FRAMES} latent={LATENT}x{LATENT} threads={torch.get_num_threads()}")

    if args.low_vram:
        run_opt = lambda: sample_clip(model, inp["start"], clip_conditioning(  # noqa: E731
            inp["masked"], inp["uncond"], inp["mask"], inp["guides"], model.encode_global(inp["global"].to(dtype)),
            model.encode_global(torch.zeros_like(inp["global"]).to(dtype))), inp["noise"], 8, steps, sequential=True)
    else:
        run_opt = lambda: optimized_clip(model, inp, steps)  # noqa: E731
    if device.type == "cuda":  # warm-up: kernels, allocator
        optimized_clip(model, inp, 1)
    opt, t_opt, mem_opt = timed(run_opt, device)
    print(f"optimized: {t_opt:.2f} s/clip ({t_opt / steps:.3f} s/step), peak {mem_opt:.0f} MB")
    flops = branch_forward_flops(CONFIGS[args.config])
    print(f"optimized: {3 * steps * flops / t_opt / 1e12:.2f} TFLOP/s achieved "
          f"({flops / 2e12:.3f} TMAC per branch-forward, 3 branches x {steps} steps)")
    if args.skip_reference:
        print(f"speedup=nan maxdiff=nan peak_mb={mem_opt:.0f}")
        return
    ref, t_ref, mem_ref = timed(lambda: reference_clip(model, inp, steps), device)
    print(f"reference: {t_ref:.2f} s/clip ({t_ref / steps:.3f} s/step), peak {mem_ref:.0f} MB")
    diff = (opt.float() - ref.float()).abs().max().item()
    tol = 1e-3 * max(1.0, ref.float().abs().max().item())
    print(f"max |optimized - reference| = {diff:.2e} (sampler-loop tolerance {tol:.2e}: "
          f"{'inside' if diff <= tol else 'OUTSIDE'})")
    print(f"speedup={t_ref / t_opt:.2f} maxdiff={diff:.3e} peak_mb={mem_opt:.0f}")


if __name__ == "__main__":
    main()
