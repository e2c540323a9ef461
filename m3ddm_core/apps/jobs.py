"""Video files through the pipeline, as the batch command and each Ray worker run them.

A :class:`JobSpec` names the models (paths: what a Ray worker needs to load its own copy) and the settings;
:func:`load_job` loads them. One file is :func:`encode_file` (probe, canvas plan, every frame encoded while the file
streams in, cuts detected on the way, the plan of its passes) -> :func:`.pipeline.executors.run_plan` (resumable
from a store in the output folder) -> :func:`write_file` (the composite written frame by frame):
:func:`outpaint_file`. :class:`BatchLedger` keeps the bookkeeping every batch runner shares and :func:`run_batch`
runs a list of files one after another. No model hub is contacted: the M3DDM weights and the SD 1.x VAE are local
files.
"""
from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from ..analysis.quality import QualityReport, check_quality, finest_passes, plan_windows
from ..media.stream import write_outpainted
from ..media.outpainted import open_range, prepare_file
from ..media.video_io import VideoInfo, read_frames
from ..model.loader import load_model
from ..pipeline.canvas import OFFICIAL_CANVAS, CanvasPlan, plan_canvas
from ..pipeline.encode import SD_LATENT_SCALE, EncodedVideo
from ..pipeline.executors import choose_branching, default_max_passes, dependents, device_free_memory, rerun_passes
from ..pipeline.outpaint import PreparedVideo, Runtime, sample
from ..pipeline.passes import SampleSettings
from ..pipeline.plan import VideoPlan
from ..pipeline.resume import PassStore
from ..pipeline.seeds import RERENDER, derive_seed

log = logging.getLogger("M3DDM")
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
    qc: bool = False  # write a quality report (analysis/quality.py) beside each output
    rerender_worst: int = 0  # re-sample up to this many flagged windows with a derived seed, keep what scores better
    passes_per_call: int = 0  # passes sampled together at most (0: auto -- by free memory on CUDA, one elsewhere)
    seed: int = 0  # every shot's and pass's seed derives from it (pipeline/seeds.py)
    setups: str = "auto"  # returning camera set-ups of detected shots: auto, none, or a label per shot (A B A)


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
    dtype = spec.dtype if spec.dtype != "auto" else torch.float16 if device.type == "cuda" else torch.float32
    loaded = load_model(Path(spec.model), dtype, device, spec.family)
    vae = load_vae(Path(spec.vae), device, torch.float32 if device.type == "cpu" else loaded.unet.dtype)
    encode, decode = vae_functions(vae)
    return Job(spec, loaded.unet, encode, decode, loaded.family)


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
    """A video file read once into its working-canvas latents, with the plan of its passes (``video``, the
    pipeline's :class:`.pipeline.outpaint.PreparedVideo`): what sampling and writing need. ``resume``: the key of
    its pass store, for passes sampled away from :func:`.pipeline.outpaint.sample` (Ray; None: not known or not
    resumable)."""

    info: VideoInfo
    plan: CanvasPlan
    video: PreparedVideo
    resume: Optional[str] = None

    @property
    def encoded(self) -> EncodedVideo:
        return self.video.encoded

    @property
    def video_plan(self) -> VideoPlan:
        return self.video.plan

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
        info, _, n = open_range(video, name=video.name)
        plan = plan_canvas((info.height, info.width), ratio=spec.ratio, even=True, family=job.family,
                           canvas_size=spec.working_size)
        video_job = prepare_file(video, info, 0, n, plan, job.encode, spec.settings, seed=spec.seed,
                                 strides=spec.strides, schedule=spec.schedule, shots=spec.shots,
                                 resumable=spec.resume, on_chunk=lambda done: progress("encode", done, n),
                                 groups=spec.setups, name=video.name)
        return EncodedFile(info, plan, video_job)


def write_file(job: Job, video: Path, out: Path, info: VideoInfo, plan: CanvasPlan, latents: torch.Tensor,
               progress: Progress = no_progress, transitions: Sequence = ()) -> None:
    """Composite ``latents`` ``[N, 4, h, w]`` onto ``video``'s frames and write ``out`` (appears only when whole),
    the borders of ``transitions`` blended. ``progress("write", frames, total)``."""
    n = info.frames
    with failure_reason():
        write_outpainted(out, video, info, 0, n, plan, latents, job.decode, job.spec.feather,
                         on_frame=lambda done: progress("write", done, n), codec=job.spec.codec,
                         transitions=transitions)


def report_path(out: Path) -> Path:
    """Where ``--qc`` writes the quality report of ``out``: ``NAME.qc.json`` beside it."""
    return Path(out).with_suffix(".qc.json")


def check_file(out: Path, plan: CanvasPlan, video_plan: VideoPlan, transitions: Sequence = ()) -> QualityReport:
    """The quality report of the written ``out`` as a player decodes it (:func:`.quality.check_quality`, windows =
    the plan's finest passes, its dissolves and fades shown)."""
    with failure_reason():
        return check_quality(read_frames(out), plan, video_plan.cuts, plan_windows(video_plan),
                             groups=video_plan.groups, transitions=transitions)


def write_report(out: Path, plan: CanvasPlan, video_plan: VideoPlan, extra: Optional[dict] = None,
                 transitions: Sequence = ()) -> QualityReport:
    """Check ``out`` (:func:`check_file`) and write the JSON report beside it, with ``extra`` entries."""
    report = check_file(out, plan, video_plan, transitions)
    with failure_reason():
        report_path(out).write_text(json.dumps({**report.to_dict(), **(extra or {})}, indent=1) + "\n")
    log.info("%s", report.text().replace("\n", "\n  "))
    return report


def _groups(video_plan: VideoPlan, indexes: Sequence[int]) -> list[set[int]]:
    """``indexes`` joined into groups whose re-renders touch the same passes (a pass depending on two of them)."""
    groups: list[tuple[set[int], set[int]]] = []  # (candidates, passes they re-sample)
    for i in indexes:
        touched = dependents(video_plan, [i])
        merged = [g for g in groups if g[1] & touched]
        groups = [g for g in groups if not g[1] & touched]
        groups.append(({i, *(c for g in merged for c in g[0])}, touched.union(*(g[1] for g in merged))))
    return [g[0] for g in groups]


def rerender_worst(job: Job, video: Path, out: Path, source: EncodedFile, latents: torch.Tensor,
                   report: QualityReport, count: int, progress: Progress = no_progress) -> tuple[torch.Tensor, list]:
    """Sample the ``count`` worst flagged windows of ``report`` again, each with a seed derived from its pass's
    (:func:`.seeds.derive_seed`, :data:`.seeds.RERENDER`) and with the passes depending on it, and keep, group by group, what scores
    better (a group: windows whose re-renders share passes, decided together so that no kept pass was guided by a
    reverted one). ``out`` is rewritten when anything is kept. Returns the final latents and one entry per
    window: its pass, seed, badness before and after, kept."""
    plan, video_plan = source.plan, source.video_plan
    worst = report.worst(count)
    if not worst:
        return latents, []
    finest = finest_passes(video_plan)
    window_of = {finest[r["window"]].index: r for r in worst}
    seeds = {i: derive_seed(video_plan.passes[i].seed, RERENDER, 1) for i in window_of}
    with failure_reason():
        new, _ = rerun_passes(job.model, source.encoded, video_plan, latents, float(source.info.fps),
                              job_settings(job, plan), seeds)
    trial = out.with_name(f".{out.stem}.rerender{out.suffix}")  # hidden: never taken for an output
    try:
        write_file(job, video, trial, source.info, plan, new, progress, source.video.transitions)
        after = check_file(trial, plan, video_plan).window_rows()
        final, entries, kept_any, all_kept = latents.clone(), [], False, True
        for group in _groups(video_plan, list(window_of)):
            before_score = sum(window_of[i]["badness"] for i in group)
            after_score = sum(after[window_of[i]["window"]]["badness"] for i in group)
            keep = after_score < before_score
            if keep:
                frames = [f for j in dependents(video_plan, group) for _, f in video_plan.passes[j].in_video.writes]
                final[frames] = new[frames]
                kept_any = True
            all_kept &= keep
            entries += [{"window": window_of[i]["window"], "pass": i, "seed": seeds[i],
                         "before": round(window_of[i]["badness"], 3),
                         "after": round(after[window_of[i]["window"]]["badness"], 3), "kept": keep} for i in group]
        if all_kept:
            os.replace(trial, out)
        elif kept_any:
            write_file(job, video, out, source.info, plan, final, progress, source.video.transitions)
    finally:
        trial.unlink(missing_ok=True)
    log.info("%s: re-rendered %d window(s), kept %d", video.name, len(entries), sum(e["kept"] for e in entries))
    return final, sorted(entries, key=lambda e: e["window"])


def job_runtime(job: Job, plan: CanvasPlan, out_dir: Path, report: Progress = no_progress,
                name: str = "M3DDM") -> Runtime:
    """The pipeline's :class:`.pipeline.outpaint.Runtime` of a job: its own model with the batching its device's
    free memory allows (:func:`job_settings`), the run's pass store in ``out_dir`` (:func:`pass_store`), and
    ``report("sample", steps done, total)``."""
    def progress(total: int, done: int, model):
        steps = [done]
        report("sample", done, total)

        def on_step(info: dict) -> None:
            steps[0] += 1
            report("sample", steps[0], total)
        return on_step
    return Runtime(lambda settings, latent_hw: (job.model, job_settings(job, plan)),
                   lambda key: pass_store(out_dir, key), progress, name=name)


def job_settings(job: Job, plan: CanvasPlan) -> SampleSettings:
    """The job's settings with the batching its device's free memory allows: up to ``spec.passes_per_call``
    passes per UNet call (auto: :func:`.executors.default_max_passes`), the guidance branches one after another
    when even one pass's do not fit."""
    device = job.model.device
    limit = job.spec.passes_per_call or default_max_passes(device)
    return choose_branching(job.model, job.spec.settings, plan.latent_hw, device_free_memory(device),
                            max_passes=limit)


def outpaint_file(job: Job, video: Path, out: Path, progress: Optional[Progress] = None) -> torch.Tensor:
    """Outpaint one video file to ``out`` (mp4) and return its final latents ``[N, 4, h, w]``. ``progress(stage,
    done, total)`` reports ``encode`` (frames), ``sample`` (denoising steps) and ``write`` (frames). Finished passes
    wait in ``out``'s folder until the file is written, so a killed run samples only what remains. Raises
    :class:`BatchError` with the reason."""
    report = progress or no_progress
    source = encode_file(job, video, report)
    with failure_reason():
        result = sample(source.video, job_runtime(job, source.plan, out.parent, report, video.name), keep_store=True)
    write_file(job, video, out, source.info, source.plan, result.latents, report, source.video.transitions)
    finish_store(pass_store(out.parent, result.store_key), out.parent)
    return finish_quality(job, video, out, source, result.latents, report)


def finish_quality(job: Job, video: Path, out: Path, source: EncodedFile, latents: torch.Tensor,
                   progress: Progress = no_progress) -> torch.Tensor:
    """After ``out`` is written: the quality report (``--qc``) and the re-render of the worst windows
    (``--rerender-worst``), whose entries go into the report. Returns the final latents."""
    spec = job.spec
    if not (spec.qc or spec.rerender_worst):
        return latents
    transitions = source.video.transitions
    report = write_report(out, source.plan, source.video_plan, transitions=transitions)
    if spec.rerender_worst:
        latents, entries = rerender_worst(job, video, out, source, latents, report, spec.rerender_worst, progress)
        if entries:
            write_report(out, source.plan, source.video_plan, {"rerendered": entries}, transitions)
    return latents


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


