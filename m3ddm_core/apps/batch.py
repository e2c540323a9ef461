"""Headless batch outpainting: ``python -m m3ddm_core.batch INPUT... --ratio 9:16 --out DIR``.

Files or folders in, one mp4 out per input (frame count, fps and audio kept), through the same streaming path as
the M3DDM Outpaint Video node (:mod:`.jobs`): frames decoded straight into the working canvas and encoded,
coarse-to-fine sampling on latents, the composite written frame by frame. A progress bar per video and overall
(tqdm), a summary of failures with their reasons, exit status 1 when any failed; a re-run skips outputs that are
already there (an output file appears only once complete) and resumes a video whose run was killed from its
finished passes. ``--ray`` runs the same jobs on a Ray cluster (:mod:`.scaleout`).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..media.video_io import CODECS
from ..model.loader import WeightsError
from ..pipeline.inputs import check_inputs
from ..pipeline.parameters import PARAMETERS
from ..pipeline.passes import SampleSettings
from .jobs import BatchError, JobSpec, load_job, run_batch

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}


def find_videos(inputs: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """``(videos, others)``: files as given, folders expanded to their videos (sorted, not recursive); ``others``
    are the files in those folders that are not videos by their suffix (named in the summary, not dropped
    silently). Hidden files (a ``.partial`` output being written) are neither."""
    found: list[Path] = []
    others: list[Path] = []
    for p in map(Path, inputs):
        if p.is_dir():
            for f in sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")):
                (found if f.suffix.lower() in VIDEO_SUFFIXES else others).append(f)
        else:
            found.append(p)
    return found, others



def _log_to_stderr(level: int) -> None:
    """The plugin's notes (rotation, alpha, colour, decoder levels) on stderr, as ComfyUI's console shows them."""
    logger = logging.getLogger("M3DDM")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)


# the options that are settings of :data:`PARAMETERS` (default, choices and help from there), by the setting's name
FLAGS = {"aspect_ratio": "--ratio", "context_guidance": "--s1", "global_guidance": "--s2",
         "working_size": "--working-size"}


def _setting(ap: argparse.ArgumentParser, name: str, **changes) -> None:
    p = PARAMETERS[name]
    given = dict(default=p.default, type=type(p.default), choices=p.options or None, help=p.help)
    ap.add_argument(_flag(name), **{**given, **changes})


def _flag(name: str) -> str:
    return FLAGS.get(name, f"--{name}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m m3ddm_core.batch", description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", type=Path, help="video files or folders of videos")
    ap.add_argument("--ratio", required=True, help="target aspect ratio W:H, e.g. 9:16")
    ap.add_argument("--out", required=True, type=Path, help="output folder (one mp4 per input)")
    ap.add_argument("--model", required=True, type=Path, help="M3DDM (or M3DDM+) weights: folder or file")
    ap.add_argument("--vae", required=True, type=Path,
                    help="SD 1.x VAE: a single file (e.g. vae-ft-mse-840000-ema-pruned.safetensors) or a diffusers folder")
    for name in ("steps", "scheduler", "context_guidance", "global_guidance", "seed"):
        _setting(ap, name)
    _setting(ap, "strides", choices=None, help=PARAMETERS["strides"].help + " Or strides of your own, e.g. 10,2,1.")
    _setting(ap, "schedule")
    _setting(ap, "shots", choices=["none", "detect"], help="outpaint each shot on its own: none, or detect (hard "
                                                            "cuts, dissolves and fades)")
    for name in ("setups", "feather"):
        _setting(ap, name)
    ap.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), or a torch device")
    for name in ("dtype", "family", "working_size"):
        _setting(ap, name)
    ap.add_argument("--codec", default="h264", choices=sorted(CODECS),
                    help="h264 (plays everywhere up to 4096x2304) or hevc (smaller files; 8K TVs decode larger frames)")
    ap.add_argument("--low-vram", action="store_true", help=PARAMETERS["low_vram"].help)
    ap.add_argument("--passes-per-call", type=int, default=0, metavar="K",
                    help="sample up to K independent passes of a video in one UNet call (0, the default: as many "
                         "as the free GPU memory holds, up to 4, on CUDA; one on the CPU and MPS). --low-vram "
                         "keeps one")
    ap.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                    help="keep each finished sampling pass in OUT/.m3ddm_resume until its video is written, so that a "
                         "killed or failed run samples only the passes that remain when run again (default: on)")
    ap.add_argument("--qc", action="store_true",
                    help="check each written video without ground truth (seam visibility, border flicker, colour "
                         "drift per shot and window) and write NAME.qc.json beside it")
    ap.add_argument("--rerender-worst", type=int, default=0, metavar="N",
                    help="with the quality check (implied): sample the N worst flagged windows again with a derived "
                         "seed and keep each where it scores better; the report lists before, after and what was kept")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--ray", metavar="local|ADDRESS",
                    help="run on Ray (pip install '.[ray]'): 'local' starts a cluster on this machine, otherwise the "
                         "address of a running cluster (e.g. ray://head:10001 or auto); one worker per GPU holds "
                         "the models, one task per video, long videos split clip by clip across the workers")
    ap.add_argument("--workers", type=int, default=0,
                    help="Ray workers (default: one per GPU of the cluster, or one per --threads CPUs without GPUs)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (CPUs) per CPU worker on Ray")
    ap.add_argument("--split-frames", type=int, default=300,
                    help="on Ray, videos of at least this many frames run clip-parallel across all workers")
    args = ap.parse_args(argv)

    _log_to_stderr(logging.WARNING if args.quiet else logging.INFO)
    problems = check_inputs(working_size=args.working_size, ratio=args.ratio, strides=args.strides, steps=args.steps,
                            context_guidance=args.s1, global_guidance=args.s2, seed=args.seed, feather=args.feather)
    if problems:
        for problem in problems:  # each led by the input it is about
            name, _, why = problem.partition(": ")
            print(f"{_flag(name)}: {why}", file=sys.stderr)
        return 2
    if args.passes_per_call < 0:
        print(f"--passes-per-call {args.passes_per_call}: use 0 (auto) or a number of passes such as 2 or 4",
              file=sys.stderr)
        return 2
    videos, others = find_videos(args.inputs)
    not_videos = (f"; not videos (by their suffix, {', '.join(sorted(VIDEO_SUFFIXES))}): "
                  + ", ".join(f.name for f in others)) if others else ""
    if not videos:
        print("no videos found in " + ", ".join(map(str, args.inputs)) + not_videos, file=sys.stderr)
        return 2
    settings = SampleSettings.of(args.scheduler, args.steps, args.s1, args.s2, args.low_vram)
    spec = JobSpec(str(args.model), str(args.vae), args.ratio, settings, args.strides, args.schedule, args.feather,
                   args.shots, args.device, args.dtype, args.codec, args.family, args.working_size, args.resume,
                   args.qc, max(0, args.rerender_worst), args.passes_per_call, args.seed, args.setups)
    if args.ray:
        from .scaleout import ScaleOutError, run_batch_ray  # Ray is an optional extra: imported only when asked
        try:
            written, skipped, failed = run_batch_ray(spec, videos, args.out, args.ray, args.workers, args.threads,
                                                     args.split_frames, show=not args.quiet)
        except ScaleOutError as exc:
            print(f"cannot run on Ray: {exc}", file=sys.stderr)
            return 2
    else:
        try:
            job = load_job(spec)
        except (WeightsError, BatchError, OSError) as exc:
            print(f"cannot load the models: {exc}", file=sys.stderr)
            return 2
        with torch.inference_mode():
            written, skipped, failed = run_batch(job, videos, args.out, show=not args.quiet)
    print(f"done: {len(written)} written, {len(skipped)} skipped (already there), {len(failed)} failed"
          + (f", {len(others)} not videos" if others else ""))
    if others:
        print(f"  left out{not_videos}")
    for video, reason in failed:
        print(f"  {video}: {reason}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
