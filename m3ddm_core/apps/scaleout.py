"""Scale-out on Ray: a folder of videos across workers, and a long video's clips across workers.

One Ray actor per GPU (or per ``threads`` CPUs) loads the models once. A short video is one task: the whole
in-process path (:func:`.jobs.outpaint_file`) on a worker. A long video is split: one worker encodes it and plans
its passes, the driver walks that plan with :class:`m3ddm_core.pipeline.executors.PlanRun` -- the sequential
executor's state: passes resumed from the video's store in the output folder, each pass handed out as soon as the
passes that generate its guide frames are done (the sparsest level's windows chain, the finer levels fan out),
each result stored -- latents travel through Ray's object store, and one worker writes the file. Every pass gets
exactly the inputs and noise the sequential executor gives it -- each worker samples with the executor's own
:func:`m3ddm_core.pipeline.executors.sample_ready` -- and decides batched or sequential guidance branches once per
video; with the same number of torch threads per process and one pass per UNet call, the result equals the
in-process one bit for bit (several passes per call round differently in the last bits). A rerun with every output present starts no cluster.

A worker that dies mid-task is restarted by Ray (its models load again) and the task goes to the next free
worker; an output file appears only once complete (:class:`m3ddm_core.media.video_io.VideoWriter`), so nothing
is half-written. Ray is an optional dependency (``pip install ".[ray]"``), imported only here.
"""
from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from .jobs import (BatchLedger, EncodedFile, JobSpec, Progress, encode_file, failure_reason, finish_store,
                    finish_quality, job_settings, load_job, no_progress, outpaint_file, pass_store, write_file)
from ..pipeline.executors import MAX_PASSES_PER_CALL, PlanRun, PreparedShots, pass_groups, sample_ready
from ..pipeline.plan import PlannedPass

RETRIES = 3  # times a task is resubmitted after its worker died
PROBES = 300  # a worker still down after this many probes, one a second, is given up


class ScaleOutError(RuntimeError):
    """Ray is missing, the cluster cannot be reached, or the workers cannot load the models."""


def _ray():
    try:
        import ray
    except ImportError:
        raise ScaleOutError("Ray is not installed: pip install '.[ray]' (or pip install 'ray>=2.40')") from None
    return ray


class Worker:
    """The body of a Ray actor: one copy of the models and the calls the driver dispatches to it."""

    def __init__(self, spec: JobSpec, threads: int = 1, events=None):
        torch.set_num_threads(max(1, int(threads)))
        self.job = load_job(spec)
        self.events = events
        self._shots: dict = {}  # video -> its PreparedShots, for the video being sampled
        self._settings: dict = {}  # video -> its settings: the branch decision made once per video, as in-process

    def pid(self) -> int:
        return os.getpid()

    def _progress(self, name: str) -> Progress:
        if self.events is None:
            return no_progress
        last = {"t": 0.0, "stage": None}

        def report(stage: str, done: int, total: int) -> None:
            now = time.monotonic()
            if stage != last["stage"] or done >= total or now - last["t"] > 0.5:  # a few events a second at most
                last.update(t=now, stage=stage)
                self.events.put_nowait((name, stage, done, total))
        return report

    def outpaint(self, video: str, out: str) -> torch.Tensor:
        """A whole video, in-process on this worker; returns its final latents."""
        with torch.inference_mode():
            return outpaint_file(self.job, Path(video), Path(out), self._progress(video))

    def encode(self, video: str) -> EncodedFile:
        """The video read once into its latents, with the plan of its passes and its resume key (which needs the
        model: the driver has none)."""
        with torch.inference_mode():
            source = encode_file(self.job, Path(video), self._progress(video))
            return replace(source, resume=source.video.store_key(self.job.model))

    def sample_passes(self, video: str, source: EncodedFile, passes: list) -> list[dict]:
        """Passes ``[(p, guides), ...]`` of ``video`` (guides and results numbered within each pass's shot) -- what
        the sequential executor computes for them, with this worker's choices: guidance branches batched or
        sequential, and up to how many of the given passes share one UNet call (its free memory decides)."""
        with torch.inference_mode(), failure_reason():
            if video not in self._shots:  # another video: the last one's global tokens are not needed any more
                self._shots = {video: PreparedShots(self.job.model, source.encoded)}
                self._settings = {video: job_settings(self.job, source.plan)}
            return sample_ready(self.job.model, self._shots[video], [p for p, _ in passes],
                                {p.index: g for p, g in passes}, float(source.info.fps), self._settings[video])

    def write(self, video: str, out: str, source: EncodedFile, latents: torch.Tensor) -> torch.Tensor:
        """Write the file, then its quality report and re-renders when asked; returns the final latents."""
        with torch.inference_mode():
            progress = self._progress(video)
            write_file(self.job, Path(video), Path(out), source.info, source.plan, latents, progress,
                       source.video.transitions)
            return finish_quality(self.job, Path(video), Path(out), source, latents, progress)


@dataclass
class _Task:
    method: str
    args: tuple
    done: Callable[[Any], None]
    fail: Callable[[str], None]
    label: str
    tries: int = 0


def _reason(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    text = str(cause if cause is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@dataclass
class _Dispatcher:
    """Hands tasks to free workers. A task whose worker died goes back to the front of the queue; the worker
    gets no task until Ray has restarted it (a probe call answers)."""

    ray: Any
    actors: list
    pids: list
    on_dispatch: Optional[Callable[[int, str], None]] = None
    idle: deque = field(default_factory=deque)
    queue: deque = field(default_factory=deque)
    running: dict = field(default_factory=dict)  # ref -> (worker, task)
    probes: dict = field(default_factory=dict)  # ref -> worker being restarted
    later: list = field(default_factory=list)  # (time, worker) to probe again
    failed_probes: dict = field(default_factory=dict)  # worker -> probes in a row that found it down

    def __post_init__(self):
        self.idle.extend(range(len(self.actors)))

    def submit(self, task: _Task) -> None:
        self.queue.append(task)

    def busy(self) -> bool:
        return bool(self.queue or self.running)

    def _probe(self, worker: int) -> None:
        self.probes[self.actors[worker].pid.remote()] = worker

    def step(self, timeout: float = 0.5) -> None:
        now = time.monotonic()
        for when, worker in [x for x in self.later if x[0] <= now]:
            self.later.remove((when, worker))
            self._probe(worker)
        while self.queue and self.idle:
            task, worker = self.queue.popleft(), self.idle.popleft()
            ref = getattr(self.actors[worker], task.method).remote(*task.args)
            self.running[ref] = (worker, task)
            if self.on_dispatch is not None:
                self.on_dispatch(self.pids[worker], task.label)
        waiting = list(self.running) + list(self.probes)
        if not waiting:
            if self.queue and not self.idle and not self.later:  # every worker is gone for good
                while self.queue:
                    self.queue.popleft().fail("no Ray worker is left (each died and could not be restarted)")
            time.sleep(min(timeout, 0.1))
            return
        ready, _ = self.ray.wait(waiting, num_returns=1, timeout=timeout)
        for ref in ready:
            if ref in self.probes:
                worker = self.probes.pop(ref)
                try:
                    self.pids[worker] = self.ray.get(ref)
                    self.idle.append(worker)  # restarted, models loaded again
                    self.failed_probes.pop(worker, None)
                except self.ray.exceptions.RayActorError:
                    self.failed_probes[worker] = self.failed_probes.get(worker, 0) + 1
                    if self.failed_probes[worker] < PROBES:
                        self.later.append((time.monotonic() + 1.0, worker))  # still restarting
                continue
            worker, task = self.running.pop(ref)
            try:
                value = self.ray.get(ref)
            except self.ray.exceptions.RayActorError as exc:
                # the worker died (killed, out of memory, node lost): Ray restarts it; the task runs again on the
                # next free worker
                self._probe(worker)
                task.tries += 1
                if task.tries > RETRIES:
                    task.fail(f"its worker died {task.tries} times ({_reason(exc)})")
                else:
                    self.queue.appendleft(task)
                continue
            except self.ray.exceptions.RayTaskError as exc:
                self.idle.appendleft(worker)
                task.fail(_reason(exc))
                continue
            self.idle.appendleft(worker)
            task.done(value)


class _SplitVideo:
    """A long video run clip-parallel: the encode task (:meth:`task`); when it is done, each pass of its plan is
    submitted as soon as the passes making its guide frames are (``PlanRun``, which also resumes from and saves to
    the video's pass store), then the write. ``finished(latents, None)`` or ``finished(None, reason)`` once at the
    end; ``progress("sample", passes done, passes)``."""

    def __init__(self, dispatch: _Dispatcher, ray, spec: JobSpec, video: str, out: str,
                 finished: Callable[[Optional[torch.Tensor], Optional[str]], None], progress: Progress,
                 per_task: int = 1):
        self.dispatch, self.ray, self.spec, self.video, self.out = dispatch, ray, spec, video, out
        self.finished, self.progress, self.per_task = finished, progress, per_task
        self.name = Path(video).name
        self.failed = False

    def task(self) -> _Task:
        return _Task("encode", (self.video,), self._encoded, self._fail, f"{self.name} encode")

    def _fail(self, reason: str) -> None:
        if not self.failed:  # the first failing pass ends the video; passes still running are ignored
            self.failed = True
            self.finished(None, reason)

    def _encoded(self, source: EncodedFile) -> None:
        self.source = source
        self.source_ref = self.ray.put(source)  # once in the object store, shared by every pass
        self.store = pass_store(Path(self.out).parent, source.resume)
        self.run = PlanRun(source.video_plan, self.store)
        self._submit_ready()

    def _submit_ready(self) -> None:
        ready = self.run.ready()
        # spread the ready passes over the workers first, then give each up to per_task of them (a GPU worker
        # samples them together)
        size = max(1, min(self.per_task, -(-len(ready) // max(1, len(self.dispatch.actors)))))
        for group in pass_groups(ready, size):
            label = ", ".join(f"pass {p.noise_index + 1}" for p in group)
            self.dispatch.submit(_Task("sample_passes",
                                       (self.video, self.source_ref, [(p, self.run.guides(p)) for p in group]),
                                       lambda value, group=group: self._passes_done(group, value), self._fail,
                                       f"{self.name} shot {group[0].shot + 1} {label}"))
        if self.run.complete:
            latents = self.run.result()
            self.dispatch.submit(_Task("write", (self.video, self.out, self.source_ref, latents),
                                       self._written, self._fail, f"{self.name} write"))

    def _passes_done(self, group: list[PlannedPass], values: list[dict]) -> None:
        if self.failed:
            return
        for p, value in zip(group, values):
            self.run.finish(p, value)
        self.progress("sample", len(self.run.done), len(self.run.plan))
        self._submit_ready()

    def _written(self, latents: torch.Tensor) -> None:
        finish_store(self.store, Path(self.out).parent)
        self.finished(latents, None)


def _connect(ray, address: str) -> bool:
    """Join the cluster at ``address`` (``local``: start one on this machine); False when already connected."""
    if ray.is_initialized():
        return False
    kwargs = dict(include_dashboard=False, log_to_driver=False,
                  runtime_env={"py_modules": [str(Path(__file__).resolve().parent.parent)]})  # the m3ddm_core package
    try:
        if address == "local":
            ray.init(address="local", **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ScaleOutError(f"cannot reach the Ray cluster at {address!r} ({_reason(exc)})") from None
    return True


def start_workers(ray, spec: JobSpec, workers: int = 0, threads: int = 1, events=None) -> tuple[list, list]:
    """``(actors, pids)``: ``workers`` actors (0: one per GPU of the cluster, else one per ``threads`` CPUs),
    each with the models loaded. Raises :class:`ScaleOutError` when they cannot load them."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if workers <= 0:
        workers = gpus or max(1, int(resources.get("CPU", 1)) // max(1, threads))
    options = dict(max_restarts=-1, max_task_retries=0)
    options.update(num_gpus=1, num_cpus=1) if gpus else options.update(num_cpus=max(1, threads))
    remote = ray.remote(Worker).options(**options)
    actors = [remote.remote(spec, threads, events) for _ in range(workers)]
    try:
        pids = ray.get([a.pid.remote() for a in actors])
    except ray.exceptions.RayActorError as exc:
        for a in actors:
            ray.kill(a)
        raise ScaleOutError(f"the workers could not load the models ({_reason(exc)})") from None
    return actors, pids


def run_batch_ray(spec: JobSpec, videos: Sequence[Path], out_dir: Path, address: str = "local", workers: int = 0,
                  threads: int = 1, split_frames: int = 300, show: bool = True, latents: Optional[dict] = None,
                  on_dispatch: Optional[Callable[[int, str], None]] = None) -> tuple[list, list, list]:
    """:func:`.jobs.run_batch` on Ray: ``(written, skipped, failed)``. Videos of at least ``split_frames``
    frames run clip-parallel across all workers, the others one task each. ``latents`` (a dict), when given,
    receives each written video's final latents ``[N, 4, h, w]``. ``on_dispatch(worker pid, label)`` is called
    as each task is handed out."""
    from ..media.video_io import probe

    ray = _ray()
    ledger = BatchLedger(videos, out_dir, spec.ratio, show, latents, desc="videos on Ray")
    todo = list(ledger.pending())  # a rerun with every output there starts no cluster and loads no model
    if not todo:
        ledger.close()
        return ledger.outcome()
    started, events, actors = False, None, None
    try:
        try:
            started = _connect(ray, address)
            if show:
                from ray.util.queue import Queue
                events = Queue(actor_options={"num_cpus": 0})
            actors, pids = start_workers(ray, spec, workers, threads, events)
        except BaseException:
            ledger.close()
            raise
        ledger.overall.set_description(f"videos on {len(actors)} workers")
        dispatch = _Dispatcher(ray, actors, pids, on_dispatch)
        # passes per task: what a GPU worker may sample together (it decides by its free memory); one on CPUs
        gpus = int(ray.cluster_resources().get("GPU", 0))
        per_task = spec.passes_per_call or (MAX_PASSES_PER_CALL if gpus else 1)
        for video, out in todo:
            def finished(result: Optional[torch.Tensor], reason: Optional[str], video=video, out=out) -> None:
                if reason is not None:  # a worker that died mid-write left its partial file
                    out.with_name(f".{out.stem}.partial{out.suffix}").unlink(missing_ok=True)
                ledger.finished(video, out, result, reason)
            try:
                long = probe(video).frames >= split_frames
            except (ValueError, OSError):
                long = False  # the worker reports why the file cannot be read
            if long:
                split = _SplitVideo(dispatch, ray, spec, str(video), str(out), finished, ledger.progress(video),
                                    per_task)
                dispatch.submit(split.task())
            else:
                dispatch.submit(_Task("outpaint", (str(video), str(out)), lambda value, f=finished: f(value, None),
                                      lambda reason, f=finished: f(None, reason), video.name))
        progress = {str(video): ledger.progress(video) for video in videos}  # worker events name the video
        try:
            while dispatch.busy():
                dispatch.step()
                if events is not None:
                    for name, stage, done, total in events.get_nowait_batch(events.qsize()):
                        if name in progress:
                            progress[name](stage, done, total)
        finally:
            ledger.close()
        return ledger.outcome()
    finally:
        for a in actors or ():
            ray.kill(a)
        if started:
            ray.shutdown()
