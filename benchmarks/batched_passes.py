"""Batched passes: k ready passes of a video sampled in one UNet call, against one pass per call, in the same run.

A whole video plan (450 frames by default: 33 passes at strides 30,15,1) is sampled by the sequential executor
(``m3ddm_core.pipeline.executors.run_plan``) with ``passes_per_call`` k = 1, 2, 4, on random canvas latents with a
seeded random-weight UNet. Printed per k: UNet calls, seconds per pass and its ratio to k = 1 (> 1: faster),
peak memory above the weights (measured: CUDA's allocator peak, or on the CPU the resident-set peak with glibc
mapping every large block separately) beside the traced estimate, and the largest difference to k = 1's latents.
Usage: ``python benchmarks/batched_passes.py [--config nano|tiny|medium|full] [--device cpu|cuda] [--dtype fp32]
[--steps 2] [--frames 450] [--ks 1,2,4] [--working-size 256]``. The last line is
``speedup_k<K>=<ratio> ...`` for each k.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from clip_speed import CONFIGS, random_model  # noqa: E402
from m3ddm_core import (DTYPES, FULL_SIZE_CONFIG, GLOBAL_FRAMES, EncodedVideo, SampleSettings, plan_canvas,  # noqa: E402
                        plan_video, run_plan, sampling_memory)

CONFIGS = dict(CONFIGS, nano=dict(FULL_SIZE_CONFIG, block_out_channels=[8, 8, 8, 8], norm_num_groups=4))
MB = 2 ** 20


def random_video(frames: int, working_size: int, seed: int = 0) -> EncodedVideo:
    """An encoded 16:9 video for a 9:16 canvas of ``working_size``: seeded random latents in the VAE's range."""
    plan = plan_canvas((1080, 1920), ratio="9:16", canvas_size=working_size)
    h, w = plan.latent_hw
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.8  # noqa: E731
    prefilled = r(frames, 4, h, w)
    return EncodedVideo(plan, prefilled, prefilled * 0.5, r(1, 4, h, w), (r(GLOBAL_FRAMES, 4, h, w),), (), 0)


class MemoryPeak:
    """Peak bytes allocated above what was live when entered: CUDA's allocator statistics, or the process's
    resident-set high-water mark (reset through /proc/self/clear_refs) on the CPU."""

    def __init__(self, device: torch.device):
        self.device = device

    @staticmethod
    def _status(field: str) -> int:
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"{field} not in /proc/self/status")

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.base = self._status("VmRSS:")
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self.peak = self._status("VmHWM:") - self.base


def measure(model, encoded: EncodedVideo, frames: int, settings: SampleSettings, ks: list[int], seed: int = 1) \
        -> list[dict]:
    """Sample the plan (seeded ``seed``) once per k; returns one row per k."""
    plan = plan_video(frames, (), "auto", "fixed", seed)
    calls = []
    hook = model.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    rows, first = [], None
    try:
        # warm-up: kernels, allocator pools and the scheduler set up before the first timed run
        clip = dataclasses.replace(encoded, prefilled=encoded.prefilled[:16], masked=encoded.masked[:16])
        run_plan(model, clip, plan_video(16, (), "auto", "fixed", 0), 30.0, settings)
        for k in ks:
            calls.clear()
            with MemoryPeak(model.device) as peak:
                start = time.perf_counter()
                latents = run_plan(model, encoded, plan, 30.0, dataclasses.replace(settings, passes_per_call=k)).latents
                if model.device.type == "cuda":
                    torch.cuda.synchronize(model.device)
                seconds = time.perf_counter() - start
            first = latents if first is None else first
            traced = sampling_memory(model.raw_config, model.dtype, 3, settings.sequential, 16,
                                     encoded.plan.latent_hw, passes=k).activations
            diff = float((latents - first).abs().max() / first.abs().max())
            rows.append(dict(k=k, calls=len(calls), passes=len(plan), seconds=seconds, per_pass=seconds / len(plan),
                             peak=peak.peak, traced=traced, diff=diff))
    finally:
        hook.remove()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="nano")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default: fp16 on CUDA, fp32 elsewhere")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--frames", type=int, default=450)
    ap.add_argument("--ks", default="1,2,4", help="passes per call to compare; the first is the baseline")
    ap.add_argument("--working-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: PyTorch's default)")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu" and os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        # every large block mapped on its own: the resident-set peak then follows live tensor bytes
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536"))
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype] if args.dtype else (torch.float16 if device.type == "cuda" else torch.float32)
    ks = [int(k) for k in args.ks.split(",")]
    model = random_model(args.config, device, dtype) if args.config in ("tiny", "medium", "full") else \
        _nano(device, dtype)
    encoded = random_video(args.frames, args.working_size)
    h, w = encoded.plan.latent_hw
    settings = SampleSettings(steps=args.steps)
    print(f"batched passes: config={args.config} device={device} dtype={str(dtype).replace('torch.', '')} "
          f"{args.frames} frames, {h}x{w} latents, {args.steps} steps, 3 guidance branches, "
          f"{torch.get_num_threads()} CPU threads")
    rows = measure(model, encoded, args.frames, settings, ks)
    base = rows[0]["per_pass"]
    print(f"{'k':>3} {'UNet calls':>10} {'s/pass':>8} {'speed vs k=' + str(ks[0]):>13} {'peak MB':>9} "
          f"{'traced MB':>10} {'max rel diff':>12}")
    for r in rows:
        print(f"{r['k']:>3} {r['calls']:>10} {r['per_pass']:>8.3f} {base / r['per_pass']:>13.2f} "
              f"{r['peak'] / MB:>9.1f} {r['traced'] / MB:>10.1f} {r['diff']:>12.1e}")
    print(" ".join(f"speedup_k{r['k']}={base / r['per_pass']:.3f}" for r in rows))


def _nano(device, dtype):
    from m3ddm_core import build_unet
    torch.manual_seed(0)
    return build_unet(CONFIGS["nano"], device=device, dtype=dtype).requires_grad_(False)


if __name__ == "__main__":
    main()
