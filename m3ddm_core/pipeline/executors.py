"""Running a :class:`.plan.VideoPlan`: the work every front-end shares, written once.

:class:`PlanRun` is the state of one video's run: passes loaded from a :class:`.resume.PassStore` instead of
sampled, the guide latents each pass needs, each finished pass saved, and which passes may start now
(:meth:`PlanRun.ready`, the one readiness rule). Executors only decide where ready passes run -- :func:`run_plan`
samples them in this process, ``apps.scaleout`` hands them to Ray workers as they become ready -- and both sample
with :func:`sample_ready`, so every pass gets the same inputs, seed and noise. With one pass per UNet call the
results are equal bit for bit; passes sampled together (``passes_per_call``) differ from one at a time only by
float rounding of the bigger batch.

:func:`reserve_for_sampling` (before the model is loaded) and :func:`choose_branching` (once it is) are the memory
decision every front-end makes: how many ready passes share one UNet call, and the guidance branches batched in
one call when the memory holds their traced activations, one after another otherwise.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import torch

from .encode import EncodedVideo
from .guidance import active_branches
from .memory import MEMORY_MARGIN, fits_batched, sampling_memory
from .plan import PlannedPass, VideoPlan
from .resume import PassStore
from .schedule import CLIP_FRAMES
from .passes import PassJob, PreparedShot, SampleSettings, prepare_shot, run_pass_batch

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

    def ready(self, claim: bool = True) -> list[PlannedPass]:
        """Passes not done nor started whose guide frames are all done, in plan order (the one readiness rule;
        the plan is ordered so that every pass comes after those it depends on). ``claim``: mark them started
        (an executor that hands them out and hears back later)."""
        out = [p for p in self.plan.passes
               if p.index not in self.done and p.index not in self.started and p.depends <= self.done]
        if claim:
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


def reserve_for_sampling(config: dict, dtype: torch.dtype, settings: SampleSettings, latent_hw: tuple[int, int],
                         room: Optional[int], device=None, where: str = "M3DDM") -> tuple[SampleSettings, int, bool]:
    """Before the model is loaded: ``(settings, bytes, traced)`` -- the activation bytes to make room for (traced,
    :func:`.memory.sampling_memory`, times the margin), with the guidance branches made sequential up front when
    ``room`` (the device's memory less what is kept free; None: unknown) cannot hold the batched ones next to the
    weights (no point unloading anything for them). ``traced`` is False when the memory could not be traced (0
    bytes: the model manager's default reserve). Once loaded, :func:`choose_branching` decides with what is free."""
    branches = len(active_branches(settings.s1, settings.s2))
    try:
        batched = sampling_memory(config, dtype, branches, False, CLIP_FRAMES, tuple(latent_hw))
        sequential = sampling_memory(config, dtype, branches, True, CLIP_FRAMES, tuple(latent_hw)) \
            if branches > 1 else batched
    except Exception as exc:  # an estimate only: sampling itself does not depend on it
        log.warning("[%s] could not estimate the sampling memory (%s); using the default reserve", where, exc)
        return settings, 0, False
    if room is not None and not settings.sequential and branches > 1:
        left = room - batched.weights
        if not fits_batched(left, batched):
            log.warning("[%s] %.1f GB of %s is left next to the model, the %d batched guidance branches need about "
                        "%.1f GB: running them one after another (as with low_vram)", where, max(left, 0) / 2 ** 30,
                        device, branches, batched.activations * MEMORY_MARGIN / 2 ** 30)
            settings = dataclasses.replace(settings, sequential=True)
    need = sequential if settings.sequential else batched
    return settings, int(need.activations * MEMORY_MARGIN), True


def place_for_sampling(config: dict, dtype: torch.dtype, settings: SampleSettings, latent_hw: tuple[int, int],
                       room: Optional[int], load: Callable[[int], Any], free: Callable[[Any], Optional[int]],
                       device=None, where: str = "M3DDM") -> tuple[Any, SampleSettings]:
    """The memory decision around a front-end's own loading: :func:`reserve_for_sampling` with ``room`` (bytes the
    device has for the model and its activations), then ``load(bytes to make room for)`` -> the model on its
    device, then :func:`choose_branching` with ``free(model)`` and :func:`default_max_passes`. Returns ``(model,
    settings)``."""
    settings, reserve, traced = reserve_for_sampling(config, dtype, settings, latent_hw, room, device, where)
    model = load(reserve)
    if model.device.type == "cpu":
        log.warning("[%s] sampling on the CPU: this works but is slow (minutes per 16-frame clip at full size)",
                    where)
    if traced and not settings.sequential:
        settings = choose_branching(model, settings, latent_hw, free(model), where,
                                    max_passes=default_max_passes(model.device))
    return model, settings


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


class PreparedShots:
    """The shots of one encoded video ready to sample (:func:`.passes.prepare_shot`: global tokens on the model's
    device), each prepared when first needed and kept until :meth:`keep` drops it."""

    def __init__(self, model, encoded: EncodedVideo):
        self.model, self.encoded = model, encoded
        self._shots: dict[int, PreparedShot] = {}

    def __getitem__(self, shot: int) -> PreparedShot:
        if shot not in self._shots:
            self._shots[shot] = prepare_shot(self.model, self.encoded, shot)
        return self._shots[shot]

    def keep(self, shots: Iterable[int]) -> None:
        """Drop the prepared shots not in ``shots`` (finished: their global tokens are not needed any more)."""
        wanted = set(shots)
        for shot in [s for s in self._shots if s not in wanted]:
            del self._shots[shot]


def sample_ready(model, shots: PreparedShots, passes: Sequence[PlannedPass],
                 guides: Mapping[int, Mapping[int, torch.Tensor]], fps: float, settings: SampleSettings,
                 callback=None, check_interrupt=None, seeds: Optional[Mapping[int, int]] = None,
                 plan_size: int = 0) -> list[dict[int, torch.Tensor]]:
    """Sample ready ``passes`` (their guides: plan index -> the guide latents, numbered within the shot), up to
    ``settings.passes_per_call`` of the same frame count per UNet call (:func:`.passes.run_pass_batch`), each
    with its plan's noise (``seeds``: plan index -> another shot seed, a re-render). Every executor samples with
    this: the sequential runner here and each Ray worker. Returns each pass's latents, in the order given;
    ``callback`` gets the step info with ``"frames"`` in video numbering, ``"pass"`` and ``"passes"``
    (``plan_size``)."""
    results: dict[int, dict[int, torch.Tensor]] = {}
    for group in pass_groups(passes, settings.passes_per_call):
        step_cb = None if callback is None else (
            lambda info, group=group: callback(dict(info, frames=[group[info["job"]].shot_start + f
                                                                  for f in info["frames"]],
                                                    **{"pass": group[info["job"]].index, "passes": plan_size})))
        jobs = [PassJob(shots[p.shot], p.clip, guides[p.index],
                        (p.reseeded(seeds[p.index]) if p.index in (seeds or {}) else p).noise_seed) for p in group]
        for p, latents in zip(group, run_pass_batch(model, jobs, fps, settings, step_cb, check_interrupt)):
            results[p.index] = latents
    return [results[p.index] for p in passes]


def _sample_remaining(model, encoded: EncodedVideo, run: PlanRun, fps: float, settings: SampleSettings,
                      callback=None, check_interrupt=None, on_pass=None, seeds: Optional[dict] = None) -> list[int]:
    """Sample the passes of ``run`` not done yet in this process: the first group of the ready ones
    (:func:`pass_groups`, plan order), then again, until none is left. ``seeds`` (plan index -> shot seed) replace
    the plan's seed of those passes. Returns the indexes sampled."""
    plan = run.plan
    shots = PreparedShots(model, encoded)
    sampled = []
    while True:
        ready = run.ready(claim=False)
        if not ready:
            break
        batch = pass_groups(ready, settings.passes_per_call)[0]
        shots.keep(p.shot for p in plan.passes if p.index not in run.done)
        results = sample_ready(model, shots, batch, {p.index: run.guides(p) for p in batch}, fps, settings,
                               callback, check_interrupt, seeds, len(plan.passes))
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


def rerun_passes(model, encoded: EncodedVideo, plan: VideoPlan, latents: torch.Tensor, fps: float,
                 settings: SampleSettings, seeds: dict[int, int], callback=None, check_interrupt=None) \
        -> tuple[torch.Tensor, list[int]]:
    """Sample the passes ``seeds`` (plan index -> new shot seed, e.g. ``derive_seed(p.seed, RERENDER, 1)``) of a
    finished run again, with every pass that depends
    on them (with its own seed: only its guides change), over the run's final ``latents`` ``[N, 4, h, w]``.
    Returns the new latents and the plan indexes sampled; nothing else changes."""
    redo = dependents(plan, seeds)
    run = PlanRun(plan)
    run.latents = {i: latents[i] for i in range(plan.num_frames)}
    run.done = {p.index for p in plan.passes} - redo
    sampled = _sample_remaining(model, encoded, run, fps, settings, callback, check_interrupt, seeds=seeds)
    return run.result(), sampled
