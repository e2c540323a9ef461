"""Shots: where an edited video cuts from one shot to the next, so that each shot is outpainted as its own video
(its own global frames and coarse-to-fine schedule; no guide frame across a cut).

Cuts are found by PySceneDetect's ``AdaptiveDetector`` on frames shrunk to at most ``DETECT_WIDTH`` pixels wide: a
frame is a cut when its content score (mean change of hue, saturation and luma per pixel from the frame before)
reaches ``MIN_SCORE`` and is ``RATIO`` times the mean score of the ``WINDOW`` frames on each side. The score is per
pixel, so two shots of one palette arranged differently (an interview's A and B cameras, two angles of one set) do
score, but only 13-18 in constructed edits: under ``ContentDetector``'s fixed threshold 27, which a fast pan over
texture passes (30-45). What tells the cut apart is that it stands out from the motion around it, which a pan,
steady at any speed, never does. Neither the edge component (Canny's thresholds follow the median brightness: on a
low-contrast warm set, noise moves more edges than the cut) nor ``HashDetector`` (its hash changes as much in a
fast pan, 0.4-0.7, as at a cut, 0.3-0.6) separates the two. A jump that comes back within ``WINDOW`` frames (a
flash) is not a cut, and shots are at least ``MIN_SHOT`` frames long.
"""
from __future__ import annotations

import re
from collections import deque
from fractions import Fraction
from typing import Iterable, Iterator, Optional, Sequence

import cv2
import numpy as np
import torch

DETECT_WIDTH = 256  # the detector's scores barely change below this width; shrinking makes 4K as cheap as 360p
MIN_SHOT = 15  # frames: a shorter "shot" is a flash or a wipe, not a cut (PySceneDetect's default)
MIN_SCORE = 10.0  # least content score of a cut (the ``threshold``): same-palette cuts score 13-18, sensor noise 3-7
RATIO = 3.0  # a cut's score over its neighbours' mean (PySceneDetect's default): same-palette cuts 3.9-4.7, pans 2.0
WINDOW = 2  # neighbours on each side; with 1, animation on twos (every other score 0) would cut all through a pan
FLASH_BACK = 0.5  # a frame within this share of the jump from one before the jump: the scene came back, a flash
_BEFORE = 3  # frames before a candidate cut that a flash of up to WINDOW frames comes back to
_RATE = Fraction(30)  # the detector wants timecodes; only frame numbers matter here


class ShotError(ValueError):
    """A list of cuts that does not fit the video."""


def _small_bgr(frame) -> np.ndarray:
    """``[H, W, 3]`` RGB frame (uint8, or float 0..1 array/tensor) -> uint8 BGR at most DETECT_WIDTH wide."""
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().cpu().numpy()
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        frame = (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)
    h, w = frame.shape[:2]
    if w > DETECT_WIDTH:
        frame = cv2.resize(frame, (DETECT_WIDTH, max(1, round(h * DETECT_WIDTH / w))), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR)


def _content_score(a: np.ndarray, b: np.ndarray) -> float:
    """PySceneDetect's content score (``content_val`` with default weights) of two ``[h, w, 3]`` uint8 BGR frames:
    mean absolute change of hue, saturation and value per pixel."""
    return float(cv2.absdiff(cv2.cvtColor(a, cv2.COLOR_BGR2HSV), cv2.cvtColor(b, cv2.COLOR_BGR2HSV)).mean())


def _is_flash(before: Sequence[np.ndarray], after: Sequence[np.ndarray]) -> bool:
    """Whether the jump from ``before[-1]`` to ``after[0]`` comes back: some frame of ``after`` (the candidate and
    the ``WINDOW`` frames past it) is close to some frame of ``before``. A flash, its way in and its way out, looks
    like a cut to the detector (two spikes stand out 3-4x from the scores around them); a cut never comes back."""
    jump = _content_score(before[-1], after[0])
    return min(_content_score(b, a) for b in before for a in after) < FLASH_BACK * jump


class CutDetector:
    """Feed frames one at a time (e.g. while a file streams in); :meth:`cuts` gives the first frame of every new
    shot. ``threshold`` is the least content score of a cut (0-255, default ``MIN_SCORE``; lower finds more cuts);
    a cut must also stand out ``RATIO`` times from the scores around it. Memory is flat: the detector keeps the last
    ``_BEFORE + WINDOW + 1`` shrunk frames, and a cut is known ``WINDOW`` frames after it."""

    def __init__(self, threshold: Optional[float] = None, min_shot: int = MIN_SHOT):
        from scenedetect import AdaptiveDetector
        from scenedetect.common import FrameTimecode

        self._timecode = FrameTimecode
        # the minimum shot is kept here, after flashes are dropped: the detector's own would let a flash hide a
        # cut that follows it within min_shot frames
        self._detector = AdaptiveDetector(adaptive_threshold=RATIO, window_width=WINDOW, min_scene_len=0,
                                          min_content_val=MIN_SCORE if threshold is None else float(threshold))
        self._recent: deque[np.ndarray] = deque(maxlen=_BEFORE + WINDOW + 1)  # shrunk frames t-_BEFORE .. t+WINDOW
        self._found: list[int] = []
        self._min_shot = int(min_shot)
        self.frames = 0

    def feed(self, frame) -> None:
        small = _small_bgr(frame)
        self._recent.append(small)
        for t in self._detector.process_frame(self._timecode(self.frames, _RATE), small):
            cut = t.frame_num  # judged once frame cut + WINDOW (this one, the newest in _recent) came in
            recent = list(self._recent)
            split = len(recent) - 1 - (self.frames - cut)  # recent[split] is the candidate's first frame
            if cut - (self._found[-1] if self._found else 0) >= self._min_shot \
                    and not _is_flash(recent[:split], recent[split:]):
                self._found.append(cut)
        self.frames += 1

    def watching(self, frames: Iterable) -> Iterator:
        """Yield ``frames`` unchanged, feeding each to the detector on the way (cuts found in the same pass over
        a file as the work that reads it)."""
        for frame in frames:
            self.feed(frame)
            yield frame

    def cuts(self) -> list[int]:
        cuts = list(self._found)
        # the minimum holds between cuts as they come: a cut just before the end would leave a last "shot" of a few
        # frames (a flash or fade-out), so it joins the shot before it (the last WINDOW frames are never judged)
        while cuts and self.frames - cuts[-1] < self._min_shot:
            cuts.pop()
        return cuts


def detect_cuts(frames: Iterable, threshold: Optional[float] = None, min_shot: int = MIN_SHOT) -> list[int]:
    """Indexes of the first frame of each new shot (frame 0 is never listed; ``[]`` = one shot).

    ``frames``: ``[N, H, W, 3]`` tensor/array or any iterable of ``[H, W, 3]`` frames, uint8 or float 0..1."""
    detector = CutDetector(threshold, min_shot)
    for frame in frames:
        detector.feed(frame)
    return detector.cuts()


def parse_cuts(text: str, num_frames: int) -> list[int]:
    """``"120, 348"`` (first frames of new shots, 0-based) -> ``[120, 348]``, checked against the video length."""
    items = [t for t in re.split(r"[,\s;]+", text.strip()) if t]
    try:
        cuts = [int(t) for t in items]
    except ValueError as e:
        raise ShotError(f"cuts must be frame numbers separated by commas, e.g. '120, 348'; got {text!r}") from e
    return check_cuts(cuts, num_frames)


def check_cuts(cuts: Sequence[int], num_frames: int) -> list[int]:
    """Sorted, distinct cuts, each ``0 < cut < num_frames``; a cut at 0 is dropped (the first shot starts there)."""
    out = sorted({int(c) for c in cuts} - {0})
    bad = [c for c in out if not 0 < c < num_frames]
    if bad:
        raise ShotError(f"cut{'s' if len(bad) > 1 else ''} {bad} outside the video's frames 1..{num_frames - 1}")
    return out


def shot_bounds(num_frames: int, cuts: Sequence[int]) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` (end exclusive) of the shots that ``cuts`` split ``num_frames`` frames into."""
    edges = [0, *check_cuts(cuts, num_frames), num_frames]
    return list(zip(edges[:-1], edges[1:]))
