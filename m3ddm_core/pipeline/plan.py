"""The plan of a video run: every sampling pass as a job, computed once and read by every executor.

A video is split at its cuts into shots; each shot gets its own coarse-to-fine passes (:func:`.schedule.plan_passes`,
numbered within the shot), its own seed and its own 16 global frames. A
:class:`PlannedPass` says which frames a pass samples (in the shot's and in the video's numbering), the noise it
draws and which earlier passes make its guide frames: what must be finished before it can run. Every seed is
derived from the user's by :func:`.seeds.derive_seed` here, once: the plan carries them to the executors and the
resume key. The sequential runner, the Ray dispatcher, the node's progress bar and the resume store all read
this one plan; no other code walks the passes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Mapping, Optional, Sequence

from .schedule import Pass, Strides, plan_passes
from .seeds import NOISE, SHOT, derive_seed
from .shots import check_setups, shot_bounds


@dataclass(frozen=True)
class PlannedPass:
    """One job of a :class:`VideoPlan`.

    index: its place in the plan (the resume store's key and the progress count);
    shot, shot_start: its shot and the shot's first frame;
    clip: the pass with frames numbered within the shot (what the sampler sees);
    noise_index: its number within the shot;
    seed: the shot's seed (its noise is drawn with :attr:`noise_seed`);
    depends: plan indexes of the passes that generate its guide frames.
    """

    index: int
    shot: int
    shot_start: int
    clip: Pass
    noise_index: int
    seed: int
    depends: frozenset

    @property
    def noise_seed(self) -> int:
        """The seed of this pass's sampling noise."""
        return derive_seed(self.seed, NOISE, self.noise_index)

    def reseeded(self, seed: int) -> "PlannedPass":
        """This pass with shot seed ``seed`` (a re-render of it)."""
        return dataclasses.replace(self, seed=int(seed))

    @cached_property
    def in_video(self) -> Pass:
        """The pass with frames numbered in the whole video."""
        return self.clip.shifted(self.shot_start)


@dataclass(frozen=True)
class VideoPlan:
    """Shots ``[(start, end), ...]`` (end exclusive) of ``num_frames`` frames split at ``cuts``, every pass, the
    user's ``seed`` every pass's seed derives from, and ``groups``: for each shot, the first shot of its camera
    set-up (itself, unless the set-up returns)."""

    num_frames: int
    cuts: tuple
    shots: tuple
    passes: tuple
    seed: int = 0
    groups: tuple = ()

    def __len__(self) -> int:
        return len(self.passes)

    def shot_passes(self, shot: int) -> list[PlannedPass]:
        return [p for p in self.passes if p.shot == shot]

    def first_level(self) -> list[PlannedPass]:
        """Each shot's sparsest passes (its largest stride: the key frames every finer pass is guided by), in plan
        order. They depend only on each other."""
        largest = {}
        for p in self.passes:
            largest[p.shot] = max(largest.get(p.shot, 0), p.clip.stride)
        return [p for p in self.passes if p.clip.stride == largest[p.shot]]

    def preview_passes(self) -> list[PlannedPass]:
        """What a preview samples, in plan order: each shot's first level -- or, where that is the whole shot (a
        short shot, whose sparsest level already is every frame), the shot's first pass, so that a preview never
        costs the whole render. They depend only on each other; the rest of the plan is guided by them."""
        first_level, out = self.first_level(), []
        for shot in sorted({p.shot for p in self.passes}):
            first = [p for p in first_level if p.shot == shot]
            out += first if len(first) < len(self.shot_passes(shot)) else first[:1]
        return sorted(out, key=lambda p: p.index)

    def key_frames(self) -> list[int]:
        """The frames the preview writes (video numbering), in order."""
        return sorted({f for p in self.preview_passes() for _, f in p.in_video.writes})


def pass_dependencies(passes: Sequence[Pass]) -> list[set[int]]:
    """For each pass, the earlier passes that generate its guide frames: what must finish before it can run.
    Passes with no dependency between them may run at the same time (on other workers) with the same result."""
    writer: dict[int, int] = {}
    deps = []
    for k, p in enumerate(passes):
        deps.append({writer[f] for f in p.guide_frames if f in writer})
        writer.update({f: k for _, f in p.writes})
    return deps


def plan_video(num_frames: int, cuts: Sequence[int] = (), strides: Strides = "auto", schedule: str = "fixed",
               seed: int = 0, shot_seeds: Optional[Mapping[int, int]] = None,
               groups: Optional[Sequence[int]] = None) -> VideoPlan:
    """The plan of outpainting ``num_frames`` frames split at ``cuts`` (first frames of new shots). Each shot samples
    with the seed derived from ``seed`` for it, or the seed ``shot_seeds`` gives it (shot index -> seed: a re-roll).
    ``groups`` (see :func:`.shots.check_setups`): a returning camera set-up samples with its first shot's seed (a
    re-roll of that shot re-rolls its returns too, unless they are re-rolled themselves).

    Raises ValueError naming the shot when its schedule cannot cover it (e.g. a 1-frame shot, official schedule),
    and ShotError for cuts outside the video -- before anything is encoded or loaded."""
    if num_frames < 1:
        raise ValueError("the video has no frames")
    bounds = shot_bounds(num_frames, cuts)
    setups = check_setups(groups, len(bounds))
    seeds = dict(shot_seeds or {})
    jobs: list[PlannedPass] = []
    for shot, (start, end) in enumerate(bounds):
        try:
            passes = plan_passes(end - start, strides, schedule)
        except ValueError as exc:
            if len(bounds) == 1:
                raise
            raise ValueError(f"shot {shot + 1} of {len(bounds)} (frames {start}-{end - 1}): {exc}") from None
        first = len(jobs)
        for k, (p, deps) in enumerate(zip(passes, pass_dependencies(passes))):
            own = setups[shot]
            shot_seed = seeds.get(shot, seeds.get(own, derive_seed(seed, SHOT, own)))
            jobs.append(PlannedPass(first + k, shot, start, p, k, int(shot_seed), frozenset(first + d for d in deps)))
    return VideoPlan(int(num_frames), tuple(b[0] for b in bounds[1:]), tuple(bounds), tuple(jobs), int(seed),
                     tuple(setups))
