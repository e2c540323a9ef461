"""Memory of one guided sampling step: traced (no compute, any machine) and, with ``--measure``, measured.

The trace (``m3ddm_core.pipeline.memory``) runs the UNet on the meta device and adds up live tensor bytes, with attention
modelled as a fused kernel. ``--measure`` runs the same step for real with random weights: on CUDA it reads
``torch.cuda.max_memory_allocated``; on the CPU it re-runs itself with glibc mapping every large block
separately, so that the peak resident set follows live tensor bytes.
Usage: ``python benchmarks/memory_budget.py [--config full] [--dtype fp16] [--working-size 256] [--passes 1]
[--measure] [--device cuda]``; ``--passes k``: k clips sampled together (batched passes); ``--working-size`` is the canvas side (M3DDM+'s output_size): latents of a side 8x smaller,
for the clip and the global frames.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the official computation (tests/reference.py)

from clip_speed import CONFIGS  # noqa: E402
from m3ddm_core import DTYPES, build_unet  # noqa: E402
from m3ddm_core.pipeline.guidance import clip_conditioning  # noqa: E402
from reference import official_noise_predictions  # noqa: E402
from m3ddm_core.pipeline.memory import (MEMORY_MARGIN, fused_attention_memory, guided_step, sampling_memory,  # noqa: E402
                               traced_peak_bytes)

GIB = 2 ** 30


def official_four_branch_bytes(config, dtype, latent: int = 32) -> int:
    """Traced activations of the official call: 4 branches, the global tokens expanded to every frame."""
    model = build_unet(config, device="meta", dtype=dtype)
    model.set_attention(fused_attention_memory)

    def step():
        z = lambda *s: torch.zeros(*s, device="meta", dtype=dtype)  # noqa: E731
        cond = clip_conditioning(z(16, 4, latent, latent), z(1, 4, latent, latent), z(latent, latent), {}, None, None)
        return official_noise_predictions(model, z(1, 4, 16, latent, latent), 500, 8, cond,
                                          z(16, 4, latent, latent))

    return traced_peak_bytes(step)


def measured_step_bytes(config, dtype, sequential: bool, device: torch.device, latent: int = 32,
                        passes: int = 1) -> int:
    """Peak bytes above the loaded weights of one real guided step (3 branches, ``passes`` clips together) with
    random weights."""
    torch.manual_seed(0)
    model = build_unet(config, device=device, dtype=dtype).requires_grad_(False)
    z = lambda *s: torch.randn(*s, device=device, dtype=dtype)  # noqa: E731
    step = lambda: guided_step(model, z, 3, sequential, latent_hw=(latent, latent), passes=passes)  # noqa: E731

    with torch.no_grad():
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            step()
            torch.cuda.synchronize(device)
            return torch.cuda.max_memory_allocated(device) - base
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _proc_status("VmRSS:")
        step()
        return _proc_status("VmHWM:") - base


def _proc_status(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="full")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="fp16")
    ap.add_argument("--measure", action="store_true", help="also run the steps for real and compare")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--working-size", type=int, default=256, help="canvas side in pixels, a multiple of 8")
    ap.add_argument("--passes", type=int, default=1, help="clips sampled together (batched passes)")
    ap.add_argument("--measure-only", choices=["batched", "sequential"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    config, dtype, device = CONFIGS[args.config], DTYPES[args.dtype], torch.device(args.device)
    latent = args.working_size // 8
    if args.measure_only:  # the child process of a CPU measurement
        print(measured_step_bytes(config, dtype, args.measure_only == "sequential", device, latent, args.passes))
        return

    print(f"config={args.config} dtype={args.dtype} clip=16 frames at {latent}x{latent} latents "
          f"({args.working_size}x{args.working_size} canvas), {args.passes} pass(es) per call")
    print(f"{'branches':>8} {'mode':>10} {'weights GiB':>11} {'activations GiB':>15} {'total GiB':>9} "
          f"{'with margin x' + str(MEMORY_MARGIN):>16}")
    for branches in (3, 2, 1):
        for sequential in (False, True):
            if branches == 1 and sequential:
                continue
            m = sampling_memory(config, dtype, branches, sequential, latent_hw=(latent, latent), passes=args.passes)
            print(f"{branches:>8} {'sequential' if sequential else 'batched':>10} {m.weights / GIB:>11.2f} "
                  f"{m.activations / GIB:>15.2f} {m.total / GIB:>9.2f} "
                  f"{(m.weights + m.activations * MEMORY_MARGIN) / GIB:>16.2f}")
    weights = sampling_memory(config, dtype, 3).weights
    official = official_four_branch_bytes(config, dtype, latent)
    print(f"{4:>8} {'official':>10} {weights / GIB:>11.2f} {official / GIB:>15.2f} {(weights + official) / GIB:>9.2f} "
          f"{(weights + official * MEMORY_MARGIN) / GIB:>16.2f}   (per-frame global tokens, fused attention)")
    if not args.measure:
        return
    for mode in ("batched", "sequential"):
        estimate = sampling_memory(config, dtype, 3, mode == "sequential", latent_hw=(latent, latent),
                                   passes=args.passes).activations
        if device.type == "cuda":
            measured = measured_step_bytes(config, dtype, mode == "sequential", device, latent, args.passes)
        else:
            env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
            child = subprocess.run([sys.executable, __file__, "--config", args.config, "--dtype", args.dtype,
                                    "--device", "cpu", "--working-size", str(args.working_size),
                                    "--passes", str(args.passes), "--measure-only", mode], env=env, capture_output=True,
                                   text=True, check=True)
            measured = int(child.stdout.split()[-1])
        print(f"measured {mode} on {device}: {measured / GIB:.2f} GiB above the weights "
              f"(traced {estimate / GIB:.2f} GiB, ratio {measured / estimate:.2f})")


if __name__ == "__main__":
    main()
