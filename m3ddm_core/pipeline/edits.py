"""An edit read once: its hard cuts, its dissolves and fades, and its returning camera set-ups, found in the same
pass over the frames as the one that encodes them (a file is read once).

Each finder sees every frame as it arrives. The cuts the pipeline uses are the hard cuts with every dissolve split
at its middle (:func:`.transitions.shot_cuts`); the set-up grouper needs each frame's shot, so it follows
:attr:`EditReader.settled` frames behind, where no later finding can move a cut: ``LATENCY`` frames for the cut
detector, ``TRANSITION_LATENCY`` when transitions are looked for (a dissolve of up to ``MAX_LENGTH`` frames is
reported ``HOLD`` frames after it ends, one out of a moving picture at most ``MAX_LENGTH`` frames after the frame
it is followed from, and may replace the one before it). Meanwhile the grouper's 32-px
thumbnails wait (2.3 KB a frame).
"""
from __future__ import annotations

from collections import deque
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from .setups import ShotGrouper, _thumb
from .shots import CutDetector, shrunk
from .transitions import HOLD, MAX_LENGTH, Transition, TransitionDetector, shot_cuts

TRANSITION_LATENCY = 2 * (MAX_LENGTH + HOLD + 2)


class EditReader:
    """Feed the frames of an edit (:meth:`watching`); then :meth:`cuts`, :meth:`transitions` and :meth:`groups`.

    ``cuts``: the hard cuts when known (None: detected); ``transitions``: look for dissolves and fades;
    ``groups``: group the shots by camera set-up (:class:`.setups.ShotGrouper`)."""

    def __init__(self, cuts: Optional[Sequence[int]] = None, transitions: bool = False, groups: bool = False):
        self._detector = CutDetector() if cuts is None else None
        self._given = sorted({int(c) for c in cuts or ()} - {0})
        self._fades = TransitionDetector() if transitions else None
        self._grouper = ShotGrouper() if groups else None
        self._waiting: deque[np.ndarray] = deque()
        self._told: list[int] = []  # the cuts the grouper was given
        self.frames = 0

    def feed(self, frame) -> None:
        frame = shrunk(frame)  # once for every finder
        if self._detector is not None:
            self._detector.feed(frame)
        if self._fades is not None:
            self._fades.feed(frame)
        self.frames += 1
        if self._grouper is not None:
            self._waiting.append(_thumb(frame))
            self._follow(self.settled)

    @property
    def settled(self) -> int:
        """Frames before this one have their final shot."""
        settled = self.frames
        if self._detector is not None:
            settled = min(settled, self._detector.settled)
        if self._fades is not None:
            settled = min(settled, self.frames - TRANSITION_LATENCY)
        return max(0, settled)

    def _found(self) -> list[int]:
        hard = self._detector.found() if self._detector is not None else self._given
        return shot_cuts(hard, self._fades.found if self._fades is not None else [])

    def _follow(self, upto: int) -> None:
        """Feed the grouper up to frame ``upto``, each cut before it given first."""
        final = [c for c in self._found() if c < upto]
        if final[:len(self._told)] != self._told:
            raise AssertionError("a cut the grouper followed moved")  # settled rules that out
        for c in final[len(self._told):]:
            self._grouper.cut(c)
        self._told = final
        while self._grouper.frames < upto:
            self._grouper.feed_thumb(self._waiting.popleft())

    def watching(self, frames: Iterable) -> Iterator:
        """Yield ``frames`` unchanged, reading each on the way."""
        for frame in frames:
            self.feed(frame)
            yield frame

    def transitions(self) -> list[Transition]:
        return self._fades.finish() if self._fades is not None else []

    def cuts(self) -> list[int]:
        """The cuts to outpaint with (hard cuts, dissolves split at their middle), once every frame is in."""
        hard = self._detector.cuts() if self._detector is not None else self._given
        return shot_cuts(hard, self.transitions())

    def groups(self) -> Optional[list[int]]:
        """Each shot's set-up (the first shot of it), once every frame is in; None without grouping."""
        if self._grouper is None:
            return None
        if self._grouper.frames < self.frames:
            cuts = self.cuts()
            if any(c not in cuts for c in self._told):
                raise AssertionError("a cut the grouper followed was dropped")  # settled rules that out
            self._grouper.replan([c for c in cuts if c >= self._grouper.frames])
            while self._waiting:
                self._grouper.feed_thumb(self._waiting.popleft())
        return self._grouper.finish()
