"""Scale-out on Ray: a folder of videos across workers, and a long video's clips across workers.

One Ray actor per GPU (or per ``threads`` CPUs) loads the models once. A short video is one task: the whole
in-process path (:func:`.batch.outpaint_file`) on a worker. A long video is split: one worker encodes it, its
sampling passes run on every worker as soon as the passes that generate their guide frames are done
(:func:`.video.pass_dependencies`: the sparsest level's windows chain, the finer levels fan out), latents travel
through Ray's object store, and one worker writes the file. Every pass gets exactly the inputs, seed and noise
index it gets in :func:`.video.outpaint_video`, so with the same number of torch threads per process the result
equals the in-process one bit for bit.

A worker that dies mid-task is restarted by Ray (its models load again) and the task goes to the next free
worker; an output file appears only once complete (:class:`.video_io.VideoWriter`), so nothing is half-written.
Ray is an optional dependency (``pip install ".[ray]"``), imported only here.
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from .batch import (JobSpec, Progress, no_progress, encode_file, failure_reason, load_job,
                    outpaint_file, output_path, write_file)
from .shots import shot_seed
from .video import pack_encoded, pass_dependencies, plan_shots, prepare_video, run_pass, shot_of, unpack_encoded

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
        self._prepared: dict = {}  # (video, shot start) -> PreparedVideo, for the video being sampled

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

    def encode(self, video: str) -> tuple:
        """``(info, plan, cuts, pack)``: the video read once into its latents (:func:`.video.pack_encoded`)."""
        with torch.inference_mode():
            source = encode_file(self.job, Path(video), self._progress(video))
        return source.info, source.plan, source.cuts, pack_encoded(source.encoded)

    def sample_pass(self, video: str, pack: dict, bounds: tuple[int, int], shot: int, p, guides: dict, fps: float,
                    index: int) -> dict:
        """Pass ``index`` of shot ``shot`` (frames ``bounds``, passes numbered within the shot) -- what
        :func:`.video.outpaint_video` computes for it."""
        key = (video, bounds[0])
        prepared = self._prepared.get(key)
        with torch.inference_mode(), failure_reason():
            if prepared is None:
                if not any(k[0] == video for k in self._prepared):
                    self._prepared.clear()  # another video: its global tokens are not needed any more
                encoded = unpack_encoded(pack)
                if bounds != (0, len(encoded.cache.frames)):  # a shot of an edited video: its own global frames
                    encoded = shot_of(encoded, *bounds)
                prepared = self._prepared[key] = prepare_video(self.job.model, encoded, pack["plan"])
            settings = dataclasses.replace(self.job.settings, seed=shot_seed(self.job.settings.seed, shot))
            return run_pass(self.job.model, prepared, p, guides, fps, settings, index)

    def write(self, video: str, out: str, info, plan, latents: torch.Tensor) -> None:
        with torch.inference_mode():
            write_file(self.job, Path(video), Path(out), info, plan, latents, self._progress(video))


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


def _split_video(dispatch: _Dispatcher, ray, spec: JobSpec, video: str, out: str,
                 finished: Callable[[Optional[torch.Tensor], Optional[str]], None],
                 progress: Callable[[str, int, int], None]) -> _Task:
    """The task that encodes ``video``; when it is done, its passes are submitted as their guides exist, then
    the write. ``finished(latents, None)`` or ``finished(None, reason)`` at the end."""

    def encoded(value) -> None:
        info, plan, cuts, pack = value
        pack_ref = ray.put(pack)
        n = info.frames
        shots = plan_shots(n, cuts, spec.strides, spec.schedule)
        deps = [pass_dependencies(passes) for _, passes in shots]
        local: list[dict] = [{} for _ in shots]
        done: list[set] = [set() for _ in shots]
        submitted: list[set] = [set() for _ in shots]
        total = sum(len(p) for _, p in shots)
        state = {"failed": False}

        def fail(reason: str) -> None:
            if not state["failed"]:
                state["failed"] = True
                finished(None, reason)

        def submit_ready() -> None:
            for s, ((start, end), passes) in enumerate(shots):
                for k, p in enumerate(passes):
                    if k in submitted[s] or not deps[s][k] <= done[s]:
                        continue
                    submitted[s].add(k)
                    guides = {f: local[s][f] for f in p.guide_frames}
                    dispatch.submit(_Task("sample_pass", (video, pack_ref, (start, end), s, p, guides,
                                                          float(info.fps), k),
                                          lambda value, s=s, k=k: pass_done(s, k, value), fail,
                                          f"{Path(video).name} shot {s + 1} pass {k + 1}"))

        def pass_done(s: int, k: int, value: dict) -> None:
            if state["failed"]:
                return
            local[s].update(value)
            done[s].add(k)
            finished_passes = sum(len(d) for d in done)
            progress("sample", finished_passes, total)
            if finished_passes < total:
                submit_ready()
                return
            final = {start + f: t for ((start, _), _), loc in zip(shots, local) for f, t in loc.items()}
            latents = torch.stack([final[i] for i in range(n)])
            dispatch.submit(_Task("write", (video, out, info, plan, latents),
                                  lambda _: finished(latents, None), fail, f"{Path(video).name} write"))
        submit_ready()

    return _Task("encode", (video,), encoded, lambda reason: finished(None, reason), f"{Path(video).name} encode")


def _connect(ray, address: str) -> bool:
    """Join the cluster at ``address`` (``local``: start one on this machine); False when already connected."""
    if ray.is_initialized():
        return False
    kwargs = dict(include_dashboard=False, log_to_driver=False,
                  runtime_env={"py_modules": [str(Path(__file__).resolve().parent)]})
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
    """:func:`.batch.run_batch` on Ray: ``(written, skipped, failed)``. Videos of at least ``split_frames``
    frames run clip-parallel across all workers, the others one task each. ``latents`` (a dict), when given,
    receives each written video's final latents ``[N, 4, h, w]``. ``on_dispatch(worker pid, label)`` is called
    as each task is handed out."""
    from tqdm import tqdm

    from .video_io import probe

    ray = _ray()
    started = _connect(ray, address)
    events = actors = None
    try:
        if show:
            from ray.util.queue import Queue
            events = Queue(actor_options={"num_cpus": 0})
        actors, pids = start_workers(ray, spec, workers, threads, events)
        dispatch = _Dispatcher(ray, actors, pids, on_dispatch)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        written, skipped, failed = [], [], []
        overall = tqdm(total=len(videos), desc=f"videos on {len(actors)} workers", unit="video", disable=not show,
                       position=0)
        bars: dict[str, Any] = {}

        def bar_progress(name: str, stage: str, done: int, total: int) -> None:
            if not show:
                return
            bar = bars.get(name)
            if bar is None:
                bar = bars[name] = tqdm(total=total, desc=Path(name).name[:30], position=len(bars) + 1, leave=False)
                bar.stage = None
            if bar.stage != stage:  # encode (frames) -> sample (steps, or passes when split) -> write (frames)
                bar.stage = stage
                bar.reset(total=total)
                bar.set_description(f"{Path(name).name[:30]} {stage}")
            bar.n = done
            bar.refresh()

        def finisher(video: Path, out: Path):
            t0 = time.perf_counter()

            def finished(result: Optional[torch.Tensor], reason: Optional[str]) -> None:
                bar = bars.pop(str(video), None)
                if bar is not None:
                    bar.close()
                if reason is None:
                    written.append(video)
                    if latents is not None:
                        latents[video] = result
                    if show:
                        overall.write(f"{video} -> {out} ({time.perf_counter() - t0:.0f} s)")
                else:
                    failed.append((video, reason))
                    out.with_name(f".{out.stem}.partial{out.suffix}").unlink(missing_ok=True)  # a dead worker's
                    if show:
                        overall.write(f"FAILED {video}: {reason}")
                overall.update(1)
            return finished

        for video in videos:
            out = output_path(video, out_dir, spec.ratio)
            if out.exists():
                skipped.append(video)
                overall.update(1)
                continue
            finished = finisher(video, out)
            try:
                long = probe(video).frames >= split_frames
            except (ValueError, OSError):
                long = False  # the worker reports why the file cannot be read
            if long:
                dispatch.submit(_split_video(dispatch, ray, spec, str(video), str(out), finished,
                                             lambda stage, d, t, v=str(video): bar_progress(v, stage, d, t)))
            else:
                dispatch.submit(_Task("outpaint", (str(video), str(out)), lambda value, f=finished: f(value, None),
                                      lambda reason, f=finished: f(None, reason), video.name))
        while dispatch.busy():
            dispatch.step()
            if events is not None:
                for name, stage, done, total in events.get_nowait_batch(events.qsize()):
                    bar_progress(name, stage, done, total)
        overall.close()
        return written, skipped, failed
    finally:
        for a in actors or ():
            ray.kill(a)
        if started:
            ray.shutdown()
