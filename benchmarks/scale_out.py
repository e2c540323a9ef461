"""Scale-out on Ray: throughput of a folder of videos with 1 vs 2 workers on this machine (one run, same videos,
ratio printed), and a projection of the wall time of a 450-frame video on k workers (GPUs).

The projection schedules the 450-frame coarse-to-fine plan (strides auto = 30,15,1: 33 passes) on k workers with
its real dependencies (:func:`m3ddm_core.pipeline.plan.pass_dependencies`: a pass starts when the passes that make its
guide frames are done; greedy list scheduling, every pass the same length) and multiplies the number of rounds by
the per-pass time: the one measured here for the nano model on one CPU thread, and the full-size 50-step PNDM
clip measured on an H200 (4.12 s, README "GPU figures"). Encoding and writing (one worker per video) are not in the
projection. Random nano weights and a random tiny VAE: the models' quality is not what is measured.

Usage: ``python benchmarks/scale_out.py [--videos 4] [--frames 24] [--steps 2]``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from random_weights import NANO_CONFIG, write_random_m3ddm  # noqa: E402

from m3ddm_core import VideoWriter  # noqa: E402
from m3ddm_core.apps.jobs import JobSpec, load_job, outpaint_file  # noqa: E402
from m3ddm_core.pipeline.schedule import plan_passes  # noqa: E402
from m3ddm_core.pipeline.plan import pass_dependencies, plan_video  # noqa: E402
from m3ddm_core.pipeline.passes import SampleSettings  # noqa: E402

GPU_PASS_SECONDS = 4.12  # full-size clip, 50 PNDM steps, fp16, H200 (README, GPU figures)


def rounds_on(passes, workers: int) -> int:
    """Rounds of equal-length passes on ``workers`` workers, each pass started as soon as its dependencies are
    done and a worker is free (greedy, in plan order)."""
    deps = pass_dependencies(passes)
    finish: dict[int, int] = {}
    free = [0] * workers
    for k in range(len(passes)):
        ready = max((finish[d] for d in deps[k]), default=0)
        w = min(range(workers), key=lambda i: max(free[i], ready))
        start = max(free[w], ready)
        finish[k] = free[w] = start + 1
    return max(finish.values())


def make_videos(folder: Path, count: int, frames: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:120, 0:208]
    videos = []
    for v in range(count):
        path = folder / f"clip{v}.mp4"
        tex = rng.integers(0, 50, (120, 208, 3), dtype=np.uint8)
        with VideoWriter(path, Fraction(25), 208, 120) as w:
            for i in range(frames):
                base = ((xx + 3 * i + 40 * v) % 200).astype(np.uint8)
                w.write(np.stack([base, ((yy + i) % 200).astype(np.uint8), np.full_like(base, 60 * v % 255)], -1)
                        + tex)
        videos.append(path)
    return videos


def critical_path(plan) -> int:
    """Passes on the longest chain of dependencies: the wall time in passes with unlimited workers (the sparsest
    level's windows chain; the finer levels fan out)."""
    depth: dict[int, int] = {}
    for p in plan.passes:
        depth[p.index] = 1 + max((depth[d] for d in p.depends), default=0)
    return max(depth.values(), default=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--steps", type=int, default=2)
    args = ap.parse_args()
    import ray

    from m3ddm_core.apps.scaleout import run_batch_ray

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # one attention head: the nano pass is then mostly convolutions, like the full model's balance
        write_random_m3ddm(root / "nano", dict(NANO_CONFIG, attention_head_dim=1))
        from diffusers import AutoencoderKL
        torch.manual_seed(0)
        AutoencoderKL(block_out_channels=[8, 8, 8, 8], down_block_types=["DownEncoderBlock2D"] * 4,
                      up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=1, norm_num_groups=4,
                      latent_channels=4).save_pretrained(str(root / "vae"), safe_serialization=True)
        videos = make_videos(root / "in", args.videos, args.frames)
        spec = JobSpec(str(root / "nano"), str(root / "vae"), "9:16",
                       SampleSettings(steps=args.steps, scheduler="ddim"), strides="1")

        # the per-pass time on one thread, in-process: from the first denoising step to the start of writing
        torch.set_num_threads(1)
        job = load_job(spec)
        steps_total = len(plan_passes(args.frames, "1")) * args.steps
        marks: dict[str, float] = {}

        def progress(stage: str, done: int, total: int) -> None:
            marks.setdefault(stage, time.perf_counter())
        with torch.inference_mode():
            outpaint_file(job, videos[0], root / "single.mp4", progress)
        per_pass_cpu = (marks["write"] - marks["sample"]) / (steps_total - 1) * args.steps
        del job

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"py_modules": [str(REPO / "m3ddm_core")]})
        seconds = {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            written, _, failed = run_batch_ray(spec, videos, root / f"out{workers}", workers=workers, threads=1,
                                               show=False)
            seconds[workers] = time.perf_counter() - t0
            assert len(written) == len(videos) and not failed, failed
            print(f"workers={workers} videos={len(videos)} frames={args.frames} seconds={seconds[workers]:.1f} "
                  f"videos_per_min={60 * len(videos) / seconds[workers]:.2f}", flush=True)
        ray.shutdown()
    print(f"throughput 2 workers / 1 worker = {seconds[1] / seconds[2]:.2f}x (2 CPU cores, one torch thread each; "
          f"each run includes starting its workers and loading the models)")

    plan = plan_passes(450, "auto")
    print(f"450 frames, strides auto: {len(plan)} passes, critical path {critical_path(plan_video(450))} passes; "
          f"per pass: nano CPU {per_pass_cpu:.2f} s (measured), full size H200 {GPU_PASS_SECONDS:.2f} s")
    print("| k workers | rounds of passes | speed-up | nano CPU wall | full-size H200 wall (sampling) |")
    print("|---|---|---|---|---|")
    one = rounds_on(plan, 1)
    for k in (1, 2, 4, 8):
        r = rounds_on(plan, k)
        print(f"| {k} | {r} | {one / r:.2f}x | {r * per_pass_cpu:.0f} s | {r * GPU_PASS_SECONDS:.0f} s |")


if __name__ == "__main__":
    main()
