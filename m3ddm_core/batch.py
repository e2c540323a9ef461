"""Headless batch outpainting: ``python -m m3ddm_core.batch INPUT... --ratio 9:16 --out DIR``.

Files or folders in, one mp4 out per input (frame count, fps and audio kept), through the same streaming path as
the M3DDM Outpaint Video node: frames decoded straight into the working canvas and encoded, coarse-to-fine
sampling on latents, the composite written frame by frame. A progress bar per video and overall (tqdm), a summary
of failures with their reasons, exit status 1 when any failed, and a re-run skips outputs that are already
there (an output file appears only once complete). No model hub is contacted: the M3DDM weights and the SD 1.x
VAE are local files.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from .canvas import FAMILIES, OFFICIAL_CANVAS, CanvasPlan, plan_canvas
from .encode import SD_LATENT_SCALE, EncodedVideo, encode_video
from .executors import choose_branching, device_free_memory, run_plan
from .loader import DTYPES, WeightsError, load_unet, weights_family
from .plan import VideoPlan, plan_video
from .resume import PassStore, source_identity
from .schedule import SCHEDULES
from .schedulers import SCHEDULERS
from .shots import CutDetector
from .stream import write_outpainted
from .video import SampleSettings, resume_key
from .video_io import CODECS, VideoInfo, probe, read_frames, source_notes

log = logging.getLogger("M3DDM")
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
# Stable Diffusion 1.x's VAE (AutoencoderKL), for single-file checkpoints that carry no config.
SD_VAE_CONFIG = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
    "block_out_channels": [128, 256, 512, 512], "sample_size": 512, "act_fn": "silu",
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
}


class BatchError(RuntimeError):
    """A video that could not be outpainted (the reason is the message)."""


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_vae(path: Path, device: torch.device, dtype: torch.dtype):
    """A local SD 1.x VAE -- a diffusers folder (``config.json`` + weights) or a single original-format file
    (``.safetensors`` / ``.ckpt``, e.g. vae-ft-mse-840000-ema-pruned) -- as diffusers' ``AutoencoderKL``."""
    from diffusers import AutoencoderKL

    path = Path(path)
    if path.is_dir():
        vae = AutoencoderKL.from_pretrained(str(path), local_files_only=True)
    else:
        from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
            state = state.get("state_dict", state)
        config = dict(SD_VAE_CONFIG)
        cfg_file = path.with_suffix(".json")  # a config beside the file (other sizes than SD 1.x's)
        if cfg_file.is_file():
            config.update(json.loads(cfg_file.read_text()))
        vae = AutoencoderKL(**config)
        try:
            converted = convert_ldm_vae_checkpoint(state, vae.config)
            missing, unexpected = vae.load_state_dict(converted, strict=False)
        except (KeyError, RuntimeError) as exc:  # other layouts or sizes
            reason = str(exc).strip().splitlines()
            raise BatchError(f"{path} is not an SD 1.x VAE ({reason[-1] if reason else type(exc).__name__})") from None
        if missing or unexpected:
            raise BatchError(f"{path} is not an SD 1.x VAE: {len(missing)} missing keys (e.g. {missing[:3]}), "
                             f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    vae = vae.to(device)
    if dtype != torch.float32:
        vae = vae.to(dtype)
    return vae.eval().requires_grad_(False)


def vae_functions(vae) -> tuple[Callable, Callable]:
    """``encode(pixels [k, H, W, 3] 0..1) -> scaled latents`` and ``decode(latents) -> [k, H, W, 3] 0..1``
    (both CPU float32) around a diffusers ``AutoencoderKL``; the encoder takes the posterior mean."""
    p = next(vae.parameters())

    def encode(pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels.permute(0, 3, 1, 2) * 2 - 1).to(p.device, p.dtype)
        return vae.encode(x).latent_dist.mean.float().cpu() * SD_LATENT_SCALE

    def decode(latents: torch.Tensor) -> torch.Tensor:
        x = vae.decode((latents / SD_LATENT_SCALE).to(p.device, p.dtype)).sample
        return ((x.float().cpu() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)
    return encode, decode


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


def output_path(video: Path, out_dir: Path, ratio: str) -> Path:
    return Path(out_dir) / f"{video.stem}_{ratio.replace(':', 'x').replace(',', '_')}.mp4"


@dataclass(frozen=True)
class JobSpec:
    """What every video of a batch shares, with the models as paths (what a Ray worker needs to load its own
    copy of them)."""

    model: str
    vae: str
    ratio: str
    settings: SampleSettings
    strides: str = "auto"
    schedule: str = "fixed"
    feather: int = 8
    shots: str = "none"
    device: str = "auto"
    dtype: str = "auto"
    codec: str = "h264"
    family: str = "auto"  # preprocessing: auto (what the weights say), m3ddm or m3ddm_plus
    working_size: int = OFFICIAL_CANVAS
    resume: bool = True  # finished passes kept in the output folder until the video is written


@dataclass
class Job:
    """A :class:`JobSpec` with its models loaded."""

    spec: JobSpec
    model: torch.nn.Module
    encode: Callable
    decode: Callable
    family: str = "m3ddm"  # the preprocessing this job uses (spec.family resolved)


def load_job(spec: JobSpec) -> Job:
    """Load the models of ``spec`` (raises :class:`.loader.WeightsError`, :class:`BatchError` or OSError)."""
    device = pick_device(spec.device)
    dtype = DTYPES.get(
        spec.dtype, torch.float16 if device.type == "cuda" else torch.float32)
    model = load_unet(Path(spec.model), dtype=dtype, device=device)
    vae = load_vae(Path(spec.vae), device, torch.float32 if device.type == "cpu" else dtype)
    encode, decode = vae_functions(vae)
    family = weights_family(Path(spec.model)) if spec.family == "auto" else spec.family
    return Job(spec, model, encode, decode, family)


Progress = Callable[[str, int, int], None]


def no_progress(stage: str, done: int, total: int) -> None:
    pass


@contextmanager
def failure_reason():
    """Turn a bad file, canvas or schedule, a full disk or out of memory into this video's :class:`BatchError`
    (reported at the end; the batch goes on with the next video)."""
    try:
        yield
    except BatchError:
        raise
    except (ValueError, OSError, RuntimeError) as exc:
        lines = str(exc).strip().splitlines()
        raise BatchError(lines[0] if lines else type(exc).__name__) from exc


@dataclass
class EncodedFile:
    """A video file read once into its working-canvas latents, with the plan of its passes: what sampling and
    writing need. ``resume`` is the key of its pass store (None: not resumable)."""

    info: VideoInfo
    plan: CanvasPlan
    encoded: EncodedVideo
    video_plan: VideoPlan
    resume: Optional[str] = None

    @property
    def cuts(self) -> list[int]:
        return list(self.encoded.cuts)


RESUME_FOLDER = ".m3ddm_resume"  # inside the output folder: hidden, so never taken for an input or an output


def pass_store(out_dir: Path, key: Optional[str]) -> Optional[PassStore]:
    """The store of a video's finished passes in ``out_dir`` (None when the run is not resumable)."""
    return None if key is None else PassStore(Path(out_dir) / RESUME_FOLDER, key)


def finish_store(store: Optional[PassStore], out_dir: Path) -> None:
    """The video is written: its passes go, and the store's folder with them when no other video's wait there."""
    if store is None:
        return
    store.clear()
    try:
        (Path(out_dir) / RESUME_FOLDER).rmdir()  # only when no other video's passes wait there
    except OSError:
        pass


def encode_file(job: Job, video: Path, progress: Progress = no_progress) -> EncodedFile:
    """Probe ``video``, plan its canvas, and encode every frame's canvases while the file streams in (shots
    detected on the way when ``job.spec.shots == "detect"``), then plan its passes. ``progress("encode", frames,
    total)``."""
    spec = job.spec
    with failure_reason():
        info = probe(video)
        for level, note in source_notes(info):
            log.log(level, "%s: %s", video.name, note)
        plan = plan_canvas((info.height, info.width), ratio=spec.ratio, even=True, family=job.family,
                           canvas_size=spec.working_size)
        n = info.frames
        detector = CutDetector() if spec.shots == "detect" else None
        # without shots the plan is known now: a schedule that cannot cover the video fails before decoding
        video_plan = None if detector else plan_video(n, (), spec.strides, spec.schedule, spec.settings.seed)
        frames = read_frames(video, 0, n)
        if detector is not None:
            frames = detector.watching(frames)
        encoded = encode_video(frames, n, plan, job.encode, cuts=detector.cuts if detector else (),
                               on_chunk=lambda done: progress("encode", done, n))
        if video_plan is None:
            video_plan = plan_video(n, encoded.cuts, spec.strides, spec.schedule, spec.settings.seed)
        key = resume_key(source_identity(video, 0, n), encoded, job.model, spec.settings, float(info.fps),
                         spec.strides, spec.schedule) if spec.resume else None
        return EncodedFile(info, plan, encoded, video_plan, key)


def write_file(job: Job, video: Path, out: Path, info: VideoInfo, plan: CanvasPlan, latents: torch.Tensor,
               progress: Progress = no_progress) -> None:
    """Composite ``latents`` ``[N, 4, h, w]`` onto ``video``'s frames and write ``out`` (appears only when whole).
    ``progress("write", frames, total)``."""
    n = info.frames
    with failure_reason():
        write_outpainted(out, video, info, 0, n, plan, latents, job.decode, job.spec.feather,
                         on_frame=lambda done: progress("write", done, n), codec=job.spec.codec)


def job_settings(job: Job, plan: CanvasPlan) -> SampleSettings:
    """The job's settings, the guidance branches one after another when its device's free memory asks for it."""
    return choose_branching(job.model, job.spec.settings, plan.latent_hw, device_free_memory(job.model.device))


def outpaint_file(job: Job, video: Path, out: Path, progress: Optional[Progress] = None) -> torch.Tensor:
    """Outpaint one video file to ``out`` (mp4) and return its final latents ``[N, 4, h, w]``. ``progress(stage,
    done, total)`` reports ``encode`` (frames), ``sample`` (denoising steps) and ``write`` (frames). Finished passes
    wait in ``out``'s folder until the file is written, so a killed run samples only what remains. Raises
    :class:`BatchError` with the reason."""
    report = progress or no_progress
    spec = job.spec
    source = encode_file(job, video, report)
    store = pass_store(out.parent, source.resume)
    steps_per_pass = spec.settings.steps
    total = len(source.video_plan) * steps_per_pass
    steps = {"done": 0}

    def on_pass(p, resumed: bool) -> None:
        if resumed:
            steps["done"] += steps_per_pass
            report("sample", steps["done"], total)

    def on_step(info: dict) -> None:
        steps["done"] += 1
        report("sample", steps["done"], total)
    with failure_reason():
        result = run_plan(job.model, source.encoded, source.video_plan, float(source.info.fps),
                          job_settings(job, source.plan), store, on_step, on_pass=on_pass, clear_store=False)
    if result.resumed:
        log.info("%s: resumed %d of %d passes from %s", video.name, len(result.resumed), len(source.video_plan),
                 store.dir)
    write_file(job, video, out, source.info, source.plan, result.latents, report)
    finish_store(store, out.parent)
    return result.latents


class BatchLedger:
    """The bookkeeping every batch runner shares: the output folder, outputs already there skipped, an overall
    bar and a stage bar per running video (tqdm), and the outcome ``(written, skipped, failed)`` with failures
    as ``(video, reason)``. ``latents`` (a dict), when given, receives each written video's final latents."""

    def __init__(self, videos: Sequence[Path], out_dir: Path, ratio: str, show: bool = True,
                 latents: Optional[dict] = None, desc: str = "videos"):
        from tqdm import tqdm
        self._tqdm = tqdm
        self.videos, self.out_dir, self.ratio = list(videos), Path(out_dir), ratio
        self.show, self.latents = show, latents
        self.written: list = []
        self.skipped: list = []
        self.failed: list = []
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.overall = tqdm(total=len(self.videos), desc=desc, unit="video", disable=not show, position=0)
        self._bars: dict = {}
        self._started: dict = {}
        self._ended: set = set()

    def pending(self):
        """``(video, out)`` for every video whose output is not there yet (the others are counted skipped)."""
        for video in self.videos:
            out = output_path(video, self.out_dir, self.ratio)
            if out.exists():
                self.skipped.append(video)
                self.overall.update(1)
                continue
            self._started[video] = time.perf_counter()
            yield video, out

    def progress(self, video: Path) -> Progress:
        """The stage bar of ``video``: it restarts as the stage changes (encode frames -> sample steps or
        passes -> write frames)."""
        def report(stage: str, done: int, total: int) -> None:
            if not self.show or video in self._ended:  # a worker's last report can arrive after its result
                return
            bar = self._bars.get(video)
            if bar is None:
                bar = self._bars[video] = self._tqdm(total=total, desc=video.name[:30], leave=False,
                                                     position=len(self._bars) + 1)
                bar.stage = None
            if bar.stage != stage:
                bar.stage = stage
                bar.reset(total=total)
                bar.set_description(f"{video.name[:30]} {stage}")
            bar.n = done
            bar.refresh()
        return report

    def finished(self, video: Path, out: Path, latents: Optional[torch.Tensor] = None,
                 reason: Optional[str] = None) -> None:
        """Record ``video`` as written (``reason`` None) or failed."""
        self._ended.add(video)
        bar = self._bars.pop(video, None)
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - self._started.get(video, time.perf_counter())
        if reason is None:
            self.written.append(video)
            if self.latents is not None:
                self.latents[video] = latents
            if self.show:
                self.overall.write(f"{video} -> {out} ({seconds:.0f} s)")
        else:
            self.failed.append((video, reason))
            if self.show:
                self.overall.write(f"FAILED {video}: {reason}")
        self.overall.update(1)

    def close(self) -> None:
        """Close every bar (also when the batch is stopped, e.g. by Ctrl-C)."""
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
        self.overall.close()

    def outcome(self) -> tuple[list, list, list]:
        return self.written, self.skipped, self.failed


def run_batch(job: Job, videos: Sequence[Path], out_dir: Path, show: bool = True, latents: Optional[dict] = None) \
        -> tuple[list, list, list]:
    """Outpaint ``videos`` into ``out_dir`` one after another: ``(written, skipped, failed)``, failed as
    ``(video, reason)``. Outputs already present are skipped (the writer creates them only when complete).
    ``latents`` (a dict), when given, receives each written video's final latents ``[N, 4, h, w]``."""
    ledger = BatchLedger(videos, out_dir, job.spec.ratio, show, latents)
    try:
        for video, out in ledger.pending():
            try:
                ledger.finished(video, out, outpaint_file(job, video, out, ledger.progress(video)))
            except BatchError as exc:
                ledger.finished(video, out, reason=str(exc))
    finally:
        ledger.close()
    return ledger.outcome()


def _log_to_stderr(level: int) -> None:
    """The plugin's notes (rotation, alpha, colour, decoder levels) on stderr, as ComfyUI's console shows them."""
    logger = logging.getLogger("M3DDM")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m m3ddm_core.batch", description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", type=Path, help="video files or folders of videos")
    ap.add_argument("--ratio", required=True, help="target aspect ratio W:H, e.g. 9:16")
    ap.add_argument("--out", required=True, type=Path, help="output folder (one mp4 per input)")
    ap.add_argument("--model", required=True, type=Path, help="M3DDM (or M3DDM+) weights: folder or file")
    ap.add_argument("--vae", required=True, type=Path,
                    help="SD 1.x VAE: a single file (e.g. vae-ft-mse-840000-ema-pruned.safetensors) or a diffusers folder")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--scheduler", default="pndm", choices=list(SCHEDULERS))
    ap.add_argument("--s1", type=float, default=2.0, help="context guidance")
    ap.add_argument("--s2", type=float, default=4.0, help="global-frame guidance")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strides", default="auto", help="auto, or coarse-to-fine strides such as 15,5,1")
    ap.add_argument("--schedule", default="fixed", choices=list(SCHEDULES))
    ap.add_argument("--shots", default="none", choices=["none", "detect"], help="outpaint each shot on its own")
    ap.add_argument("--feather", type=int, default=8)
    ap.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), or a torch device")
    ap.add_argument("--dtype", default="auto", choices=["auto", *DTYPES])
    ap.add_argument("--family", default="auto", choices=["auto", *FAMILIES],
                    help="preprocessing of the model family: auto (what the weights say: a Lightning checkpoint or "
                         "a marked file is M3DDM+), m3ddm (OpenCV resize, masked global frames) or m3ddm_plus "
                         "(antialiased resize, whole frames as global frames)")
    ap.add_argument("--working-size", type=int, default=OFFICIAL_CANVAS,
                    help="side of the square working canvas, a multiple of 8 (M3DDM+'s output_size; 256 as trained)")
    ap.add_argument("--codec", default="h264", choices=sorted(CODECS),
                    help="h264 (plays everywhere up to 4096x2304) or hevc (smaller files; 8K TVs decode larger frames)")
    ap.add_argument("--low-vram", action="store_true",
                    help="run the guidance branches one after another (less GPU memory, a bit slower); without it they "
                         "are batched when the free memory holds them")
    ap.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                    help="keep each finished sampling pass in OUT/.m3ddm_resume until its video is written, so that a "
                         "killed or failed run samples only the passes that remain when run again (default: on)")
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
    if args.working_size % 8 or not 64 <= args.working_size <= 1024:
        print(f"--working-size {args.working_size}: use a multiple of 8 from 64 to 1024 (e.g. 128, 256, 512)",
              file=sys.stderr)
        return 2
    videos, others = find_videos(args.inputs)
    not_videos = (f"; not videos (by their suffix, {', '.join(sorted(VIDEO_SUFFIXES))}): "
                  + ", ".join(f.name for f in others)) if others else ""
    if not videos:
        print("no videos found in " + ", ".join(map(str, args.inputs)) + not_videos, file=sys.stderr)
        return 2
    settings = SampleSettings(steps=args.steps, s1=args.s1, s2=args.s2, scheduler=args.scheduler, seed=args.seed,
                              sequential=args.low_vram)
    spec = JobSpec(str(args.model), str(args.vae), args.ratio, settings, args.strides, args.schedule, args.feather,
                   args.shots, args.device, args.dtype, args.codec, args.family, args.working_size, args.resume)
    if args.ray:
        from .scaleout import ScaleOutError, run_batch_ray
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
