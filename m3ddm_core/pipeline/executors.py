"""Running a :class:`.plan.VideoPlan`: the work every front-end shares, written once.

:class:`PlanRun` is the state of one video's run: passes loaded from a :class:`.resume.PassStore` instead of
sampled, the guide latents each pass needs, each finished pass saved, and which passes may start now (their guide
frames are done). Executors only decide where a ready pass runs: :func:`run_plan` samples them one after another in
this process (the nodes, the batch command, a Ray worker's whole video), ``scaleout`` hands them to Ray workers as
they become ready. Both give every pass the same inputs, seed and noise, so the result is the same bit for bit.

:func:`choose_branching` is the memory decision both make: how many ready passes share one UNet call, and the
guidance branches batched in one call when the free memory holds their traced activations, one after another
otherwise.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import torch

from .encode import EncodedVideo, EncodeFn, encode_video
from .guidance import active_branches
from .memory import MEMORY_MARGIN, fits_batched, sampling_memory
from .plan import PlannedPass, VideoPlan, plan_video
from .resume import PassStore
from .schedule import CLIP_FRAMES, Pass, Strides
from .passes import (DecodeFn, PassJob, PreparedShot, SampleSettings, decode_latents, prepare_shot,
                     run_pass_batch)

log = logging.getLogger("M3DDM")


class PlanRun:
    """One video's run of ``plan``: finished frames' latents (numbered in the video), the passes done, resumed from
    ``store`` or started. The store, when given, is read now (passes found there count as done) and written as
    passes finish."""

    def __init__(self, plan: VideoPlan, store: Optional[PassStore] = None,
                 overrides: Optional[dict[int, torch.Tensor]] = None):
        self.plan, self.store = plan, store
        self.overrides = dict(overrides or {})  # frame -> latent that replaces what its pass wrote (an edit)
        self.latents: dict[int, torch.Tensor] = {}
        self.done: set[int] = set()
        self.started: set[int] = set()
        self.resumed: list[int] = []
        if store is not None:
            for p in plan.passes:
                stored = store.load(p.index)
                if stored is not None and set(stored) == set(p.in_video.distinct_frames):
                    self.latents.update(stored)
                    self.done.add(p.index)
                    self.resumed.append(p.index)
        self.latents.update({f: t for f, t in self.overrides.items() if f in self.latents})

    @property
    def complete(self) -> bool:
        return len(self.done) == len(self.plan.passes)

    def ready(self) -> list[PlannedPass]:
        """Passes not started whose guide frames are all done, in plan order (marked started)."""
        out = [p for p in self.plan.passes
               if p.index not in self.done and p.index not in self.started and p.depends <= self.done]
        self.started.update(p.index for p in out)
        return out

    def guides(self, p: PlannedPass) -> dict[int, torch.Tensor]:
        """The guide latents of ``p``, numbered within its shot (what :func:`.passes.run_pass` takes)."""
        return {f: self.latents[p.shot_start + f] for f in p.clip.guide_frames}

    def finish(self, p: PlannedPass, latents: dict[int, torch.Tensor]) -> None:
        """Record pass ``p``'s result (frames numbered within its shot) and store it."""
        in_video = {p.shot_start + f: t for f, t in latents.items()}
        if self.store is not None:
            self.store.save(p.index, in_video)  # as sampled: an edit is applied again on every run
        self.latents.update(in_video)
        self.latents.update({f: self.overrides[f] for f in in_video if f in self.overrides})
        self.done.add(p.index)

    def result(self) -> torch.Tensor:
        """``[N, 4, h, w]``: every frame's final latent (the run is complete)."""
        return torch.stack([self.latents[i] for i in range(self.plan.num_frames)])


# The most ready passes of a video sampled together when the memory allows (on CUDA: the README's measurement).
MAX_PASSES_PER_CALL = 4


def choose_branching(model, settings: SampleSettings, latent_hw: tuple[int, int], free_bytes: Optional[int],
                     where: str = "M3DDM", max_passes: int = 1) -> SampleSettings:
    """``settings`` with the batching decided by memory: how many ready passes are sampled together
    (``passes_per_call``, the most up to ``max_passes`` whose batched activations -- traced,
    :func:`.memory.sampling_memory`, times the margin -- fit in ``free_bytes``), and the guidance branches made
    sequential when not even one pass's batched branches fit. ``free_bytes`` ``None`` (the CPU, MPS, or a caller
    that decided already) keeps the branching and takes ``max_passes`` as given; ``sequential`` settings (low_vram)
    keep one pass."""
    limit = max(1, int(max_passes))
    branches = len(active_branches(settings.s1, settings.s2))
    if settings.sequential:
        return dataclasses.replace(settings, passes_per_call=1)
    if free_bytes is None:
        return dataclasses.replace(settings, passes_per_call=limit)
    if limit == 1 and branches < 2:
        return dataclasses.replace(settings, passes_per_call=1)
    try:
        for k in range(limit, 0, -1):
            need = sampling_memory(model.raw_config, model.dtype, branches, False, CLIP_FRAMES, tuple(latent_hw),
                                   passes=k)
            if fits_batched(free_bytes, need):
                if k < limit:
                    log.info("[%s] %.1f GB free on %s: sampling %d pass(es) per UNet call (up to %d asked)", where,
                             free_bytes / 2 ** 30, model.device, k, limit)
                return dataclasses.replace(settings, passes_per_call=k)
    except Exception as exc:  # an estimate only: sampling itself does not depend on it
        log.warning("[%s] could not estimate the sampling memory (%s); one pass per call, branches batched", where,
                    exc)
        return dataclasses.replace(settings, passes_per_call=1)
    settings = dataclasses.replace(settings, passes_per_call=1)
    if branches < 2:
        return settings
    log.warning("[%s] %.1f GB free on %s, the %d batched guidance branches need about %.1f GB: running them one "
                "after another (as with low_vram)", where, free_bytes / 2 ** 30, model.device, branches,
                need.activations * MEMORY_MARGIN / 2 ** 30)
    return dataclasses.replace(settings, sequential=True)


def default_max_passes(device: torch.device) -> int:
    """How many passes to sample together at most when the user did not say: :data:`MAX_PASSES_PER_CALL` on
    CUDA, one elsewhere (on the CPU a bigger batch gains little: ``benchmarks/batched_passes.py``)."""
    return MAX_PASSES_PER_CALL if torch.device(device).type == "cuda" else 1


def device_free_memory(device: torch.device) -> Optional[int]:
    """Free bytes on a CUDA device, counting what PyTorch holds reserved but unused as free (as ComfyUI does:
    the allocator hands it out again); None elsewhere (the CPU and MPS share the machine's memory)."""
    if device.type == "cuda":
        unused = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(torch.cuda.mem_get_info(device)[0] + unused)
    return None


@dataclass
class PlanResult:
    latents: torch.Tensor  # [N, 4, h, w] final latents per frame
    resumed: list[int] = field(default_factory=list)  # plan indexes loaded from the store instead of sampled
    sampled: list[int] = field(default_factory=list)  # plan indexes sampled by this run


def run_plan(model, encoded: EncodedVideo, plan: VideoPlan, fps: float, settings: SampleSettings,
             store: Optional[PassStore] = None, callback: Optional[Callable[[dict], None]] = None,
             check_interrupt: Optional[Callable[[], None]] = None,
             on_pass: Optional[Callable[[PlannedPass, bool], None]] = None, clear_store: bool = True,
             overrides: Optional[dict[int, torch.Tensor]] = None) -> PlanResult:
    """Sample every pass of ``plan`` over ``encoded`` in this process, in plan order (the sequential executor).

    ``store`` makes the run resumable: passes found there are loaded, each sampled pass is saved, and the store
    is cleared once the result exists (or by the caller, with ``clear_store=False``, once the file is written).
    ``callback`` gets ``{"pass", "passes", "i", "total", "t", "x", "denoised", "frames"}`` after every step (frames
    numbered in the video); ``check_interrupt`` is called before every step and may raise; ``on_pass(pass,
    resumed)`` after each pass. ``overrides`` (frame -> latent, e.g. an edited key frame) replace what a pass writes
    for those frames, so every later pass is guided by them."""
    if tuple(encoded.cuts) != tuple(plan.cuts) or encoded.num_frames != plan.num_frames:
        raise ValueError(f"the plan ({plan.num_frames} frames, cuts {list(plan.cuts)}) is not of this encoded video "
                         f"({encoded.num_frames} frames, cuts {list(encoded.cuts)})")
    run = PlanRun(plan, store, overrides)
    if on_pass is not None:
        for index in run.resumed:
            on_pass(plan.passes[index], True)
    sampled = _sample_remaining(model, encoded, run, fps, settings, callback, check_interrupt, on_pass)
    latents = run.result()
    if store is not None and clear_store:
        store.clear()
    return PlanResult(latents, run.resumed, sampled)


def next_batch(plan: VideoPlan, done: set[int], limit: int) -> list[PlannedPass]:
    """Up to ``limit`` passes not in ``done`` whose guide frames are all done, in plan order, of the first one's
    frame count (:func:`pass_groups`' first group). With ``limit`` 1 this is the next pass in plan order: the plan
    is ordered so that every pass comes after those it depends on."""
    ready = [p for p in plan.passes if p.index not in done and p.depends <= done]
    return pass_groups(ready, limit)[0] if ready else []


def pass_groups(passes: Iterable[PlannedPass], size: int) -> list[list[PlannedPass]]:
    """``passes`` in order, in groups of at most ``size`` that can be sampled together (the same frame count)."""
    groups: list[list[PlannedPass]] = []
    open_group: dict[int, list[PlannedPass]] = {}  # frame count -> the group being filled
    for p in passes:
        group = open_group.get(len(p.clip.frames))
        if group is None or len(group) >= max(1, size):
            group = open_group[len(p.clip.frames)] = []
            groups.append(group)
        group.append(p)
    return groups


def _sample_remaining(model, encoded: EncodedVideo, run: PlanRun, fps: float, settings: SampleSettings,
                      callback=None, check_interrupt=None, on_pass=None, seeds: Optional[dict] = None) -> list[int]:
    """Sample the passes of ``run`` not done yet, each after the passes it depends on, up to
    ``settings.passes_per_call`` of them together (:func:`.passes.run_pass_batch`; the ready passes in plan order);
    ``seeds`` (plan index -> seed) replace the plan's seed of those passes. Returns the indexes sampled."""
    plan = run.plan
    shots: dict[int, PreparedShot] = {}
    sampled = []
    limit = max(1, int(settings.passes_per_call))
    while True:
        batch = next_batch(plan, run.done, limit)
        if not batch:
            break
        pending = {p.shot for p in plan.passes if p.index not in run.done}
        for shot in [s for s in shots if s not in pending]:
            del shots[shot]  # a finished shot: its global tokens are not needed any more
        for shot in sorted({p.shot for p in batch} - set(shots)):
            shots[shot] = prepare_shot(model, encoded, shot)
        step_cb = None if callback is None else (
            lambda info, batch=batch: callback(dict(info, frames=[batch[info["job"]].shot_start + f
                                                                  for f in info["frames"]],
                                                    **{"pass": batch[info["job"]].index,
                                                       "passes": len(plan.passes)})))
        jobs = [PassJob(shots[p.shot], p.clip, run.guides(p), (seeds or {}).get(p.index, p.seed), p.noise_index)
                for p in batch]
        results = run_pass_batch(model, jobs, fps, settings, step_cb, check_interrupt)
        for p, latents in zip(batch, results):
            run.finish(p, latents)
            sampled.append(p.index)
            if on_pass is not None:
                on_pass(p, False)
    return sampled


def run_passes(model, encoded: EncodedVideo, plan: VideoPlan, indexes, fps: float, settings: SampleSettings,
               store: Optional[PassStore] = None, callback=None, check_interrupt=None,
               on_pass=None) -> dict[int, torch.Tensor]:
    """Sample only the passes ``indexes`` of ``plan`` (with every pass they depend on among them: e.g. the first
    level, :meth:`.plan.VideoPlan.first_level`), resuming from and saving to ``store`` as :func:`run_plan` does, so
    that a later :func:`run_plan` with the same store samples only the rest. Returns ``{frame: latent}`` of the
    frames they write (video numbering); the store is kept."""
    wanted = set(indexes)
    missing = {d for p in plan.passes if p.index in wanted for d in p.depends} - wanted
    if missing:
        raise ValueError(f"passes {sorted(missing)[:8]} are needed as guides by the passes asked for")
    run = PlanRun(plan, store)
    if on_pass is not None:
        for index in run.resumed:
            if index in wanted:
                on_pass(plan.passes[index], True)
    skipped = {p.index for p in plan.passes} - wanted - run.done
    run.done |= skipped  # not sampled here: the executor passes them over
    _sample_remaining(model, encoded, run, fps, settings, callback, check_interrupt, on_pass)
    return {f: run.latents[f] for p in plan.passes if p.index in wanted for _, f in p.in_video.writes}


def dependents(plan: VideoPlan, indexes) -> set[int]:
    """``indexes`` and every pass that depends on them, directly or through others (their guides would change)."""
    out = set(indexes)
    for p in plan.passes:  # plan order: a pass's dependencies come before it
        if p.depends & out:
            out.add(p.index)
    return out


def rerender_seed(seed: int, attempt: int = 1) -> int:
    """The seed a pass is sampled again with: derived from its own, so a re-render is reproducible."""
    return (int(seed) + 104_729 * int(attempt)) % (2 ** 63)


def rerun_passes(model, encoded: EncodedVideo, plan: VideoPlan, latents: torch.Tensor, fps: float,
                 settings: SampleSettings, seeds: dict[int, int], callback=None, check_interrupt=None) \
        -> tuple[torch.Tensor, list[int]]:
    """Sample the passes ``seeds`` (plan index -> new seed) of a finished run again, with every pass that depends
    on them (with its own seed: only its guides change), over the run's final ``latents`` ``[N, 4, h, w]``.
    Returns the new latents and the plan indexes sampled; nothing else changes."""
    redo = dependents(plan, seeds)
    run = PlanRun(plan)
    run.latents = {i: latents[i] for i in range(plan.num_frames)}
    run.done = {p.index for p in plan.passes} - redo
    sampled = _sample_remaining(model, encoded, run, fps, settings, callback, check_interrupt, seeds=seeds)
    return run.result(), sampled


@dataclass
class OutpaintResult:
    canvases: Optional[torch.Tensor]  # [N, ch, cw, 3] float 0..1, the generated canvases (None: decode=None)
    latents: torch.Tensor  # [N, 4, h, w] final latents per frame
    passes: list[Pass]  # numbered in the video's frames
    encoded_images: int
    denoising_steps: int  # sampled passes x steps (each step is one UNet call, or one per branch when sequential)
    resumed_passes: list[int] = field(default_factory=list)  # passes loaded from the store instead of sampled


def outpaint_video(model, frames: Iterable, plan, encode: Optional[EncodeFn], decode: Optional[DecodeFn],
                   fps: float, settings: SampleSettings = SampleSettings(), strides: Strides = "auto",
                   schedule: str = "fixed", callback: Optional[Callable[[dict], None]] = None,
                   check_interrupt: Optional[Callable[[], None]] = None, encoded: Optional[EncodedVideo] = None,
                   decode_batch: int = CLIP_FRAMES, store: Optional[PassStore] = None, cuts=()) -> OutpaintResult:
    """The whole chain for frames in memory: :func:`.encode.encode_video` (unless ``encoded`` is given, which then
    brings its own cuts), :func:`.plan.plan_video`, :func:`run_plan`, and the canvases decoded (``decode=None``
    leaves them undecoded). ``frames``: ``[N, H, W, 3]`` tensor/array or a sequence of frames, uint8 or float 0..1
    (with ``encoded``, anything of the frame count). ``plan`` is the :class:`.canvas.CanvasPlan`."""
    n = len(frames)
    video_plan = plan_video(n, encoded.cuts if encoded is not None else cuts, strides, schedule, settings.seed)
    if encoded is None:  # the plan is checked before any encoding
        encoded = encode_video(frames, n, plan, encode, cuts)
    result = run_plan(model, encoded, video_plan, fps, settings, store, callback, check_interrupt)
    canvases = None if decode is None else decode_latents(decode, result.latents, decode_batch)
    return OutpaintResult(canvases, result.latents, [p.in_video for p in video_plan.passes],
                          encoded.encoded_images, len(result.sampled) * settings.steps, result.resumed)
