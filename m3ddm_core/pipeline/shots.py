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

Issue 33: a cut into or out of fast motion does not stand out from the plain scores around it, so every score is
now taken after the camera's motion is taken out (:func:`_motion_score`: the best global shift, phase correlation
then a small search, on softened frames); a pan, whip pan or shake is explained by the shift, a cut is not. The
best shift is trusted only where the camera's motion in the frame pairs before and after it could make it
(:func:`_follows`): at a cut between two cameras on one set it lines up whatever looks alike (the person on the
left in one shot with the person on the right in the other) while the camera stands still on both sides, so there
the frames are compared where the camera was going. The flash test, likewise, looks for the way back where the
camera went on moving, not at any shift. The shortest shot kept is ``MIN_SHOT`` = 4 frames (0.13-0.17 s, as short
as music videos and trailers cut): a jump that comes back within ``FLASH`` = 3 frames is a flash, not a shot. Not
found: a jump of the framing by less than ``JOLT`` of the width (a jump cut with the camera nudged looks like a
bump of the camera). ``benchmarks/cuts.py`` measures it.
"""
from __future__ import annotations

import re
from collections import deque
from fractions import Fraction
from functools import lru_cache
from typing import Iterable, Iterator, Optional, Sequence

import cv2
import numpy as np
import torch

DETECT_WIDTH = 256  # the detector's scores barely change below this width; shrinking makes 4K as cheap as 360p
MIN_SHOT = 4  # frames: the shortest shot kept (see the module docstring: 1-3 frames that come back are a flash)
FLASH = 3  # frames: the longest flash, a jump that comes back to the shot it left
MIN_SCORE = 10.0  # least plain content score of a cut (the ``threshold``): same-palette cuts 13-18, sensor noise 3-7
MIN_MOTION = 4.0  # least motion-compensated score of a cut: same-palette cuts 6-11, a still shot's frames under 1
RATIO = 3.0  # a cut's score over its neighbours' mean (PySceneDetect's default)
WINDOW = 2  # neighbours on each side; with 1, animation on twos (every other score 0) would cut all through a pan
FLASH_BACK = 0.5  # a frame within this share of the jump from one before the jump: the scene came back, a flash
SEARCH = 3  # px at half size around each guess of the camera's shift: finds the shift to 1 px (see _best_shift)
JOLT = 0.1  # share of the width by which the camera's shift may change between frame pairs where it was still
SWAY = 3.0  # ... plus this many times the shift around it (shake reverses it: up to 2.2x in constructed edits)
MIN_OVERLAP = 0.4  # least share of the frame two shifted frames must share to be compared
# frames: a cut is known at most this many frames after it (its score waits for the next frame's shift, the
# adaptive ratio for WINDOW frames more, the flash test for FLASH more), with a margin; tests/test_shots.py checks
LATENCY = 2 * (WINDOW + FLASH + 1)
_RATE = Fraction(30)  # the detector wants timecodes; only frame numbers matter here


class ShotError(ValueError):
    """A list of cuts that does not fit the video."""


class SmallFrame(np.ndarray):
    """A frame :func:`_small_bgr` already shrank (marked so): the finders fed one frame share one shrink
    (:class:`.edits.EditReader`)."""


def shrunk(frame) -> SmallFrame:
    """``frame`` shrunk once for every finder that is fed it."""
    return _small_bgr(frame).view(SmallFrame)


def _small_bgr(frame) -> np.ndarray:
    """``[H, W, 3]`` RGB frame (uint8, or float 0..1 array/tensor) -> uint8 BGR at most DETECT_WIDTH wide (a
    :class:`SmallFrame` is that already)."""
    if isinstance(frame, SmallFrame):
        return frame.view(np.ndarray)
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


class _Frame:
    """One shrunk frame as the scores need it: ``hsv`` ``[h, w, 3]`` uint8 (the content score's colours), ``soft``
    the same softened (blur sigma 1.5 px: sub-pixel and slight turns of the camera leave no residue), ``levels``
    its grey at full, half and quarter size (float32) for finding the camera's shift."""

    def __init__(self, bgr: np.ndarray):
        soft = cv2.GaussianBlur(bgr, (0, 0), 1.5)
        self.hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
        self.soft = cv2.cvtColor(soft, cv2.COLOR_BGR2HSV)
        grey = cv2.cvtColor(soft, cv2.COLOR_BGR2GRAY).astype(np.float32)
        half = cv2.resize(grey, (max(1, grey.shape[1] // 2), max(1, grey.shape[0] // 2)), interpolation=cv2.INTER_AREA)
        quarter = cv2.resize(half, (max(1, half.shape[1] // 2), max(1, half.shape[0] // 2)),
                             interpolation=cv2.INTER_AREA)
        self.levels = (grey, half, quarter)


def _mean_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two arrays of one shape per value (one OpenCV call, no array in between)."""
    return cv2.norm(a, b, cv2.NORM_L1) / a.size


def _overlap(a: np.ndarray, b: np.ndarray, dx: int, dy: int) -> tuple[np.ndarray, np.ndarray]:
    """The parts of ``a`` and ``b`` (same shape) that show the same place when ``b``'s content is ``a``'s moved by
    ``(dx, dy)`` px."""
    h, w = a.shape[:2]
    return (a[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)],
            b[max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)])


def _shift_cost(a: np.ndarray, b: np.ndarray, dx: int, dy: int) -> float:
    """Mean absolute difference of ``a`` and ``b`` over their overlap at shift ``(dx, dy)``; inf when they share
    less than ``MIN_OVERLAP`` of the frame (a mismatch of a sliver is no evidence)."""
    h, w = a.shape[:2]
    if min(w - abs(dx), h - abs(dy)) <= 0 or (w - abs(dx)) * (h - abs(dy)) < MIN_OVERLAP * w * h:
        return float("inf")
    x, y = _overlap(a, b, dx, dy)
    return _mean_change(x, y)


def _extent(shift: tuple[int, int]) -> int:
    return max(abs(shift[0]), abs(shift[1]))


def _reach(around: Sequence[tuple[int, int]], width: int) -> float:
    """How far the camera's shift can be from the shifts ``around`` it (the frame pairs before and after): ``JOLT``
    of the width plus ``SWAY`` times the largest of them. A pan or a whip pan changes its shift from one frame pair
    to the next by at most about its own size, shake by about twice (it turns back: +61 px after -30); at a cut the
    best shift is wherever the two shots happen to look alike (one set seen by two cameras: the person on the left
    in one shot lines up with the person on the right in the other), however still the camera is on both sides."""
    return JOLT * width + SWAY * max(_extent(s) for s in around)


def _follows(shift: tuple[int, int], around: Sequence[tuple[int, int]], reach: float) -> bool:
    """Whether ``shift`` is within ``reach`` of one of the shifts ``around`` it."""
    return min(_extent((shift[0] - s[0], shift[1] - s[1])) for s in around) <= reach


def _best_shift(prev: _Frame, cur: _Frame, guesses: Sequence[tuple[int, int]],
                reach: Optional[float] = None) -> tuple[int, int]:
    """The camera's shift from ``prev`` to ``cur`` in full-size px (content moved by ``(dx, dy)``): phase
    correlation at quarter size (robust to noise and motion blur, but biased towards 0 by up to a fifth), then
    a search of +-SEARCH px at half size around it and around each of ``guesses``; then +-1 px at full size. With
    ``reach``, the phase correlation's shift is searched only where it is within ``reach`` of a guess."""
    (qx, qy), _ = cv2.phaseCorrelate(prev.levels[2], cur.levels[2],
                                     cv2.createHanningWindow(prev.levels[2].shape[::-1], cv2.CV_32F))
    centres = {(round(g[0] / 2), round(g[1] / 2)) for g in guesses}
    found = (round(4 * qx), round(4 * qy))
    if reach is None or _follows(found, guesses, reach):
        centres.add((round(found[0] / 2), round(found[1] / 2)))
    a, b = prev.levels[1], cur.levels[1]
    tried: dict[tuple[int, int], float] = {}
    for cx, cy in centres:
        for dx in range(cx - SEARCH, cx + SEARCH + 1):
            for dy in range(cy - SEARCH, cy + SEARCH + 1):
                if (dx, dy) not in tried:
                    tried[dx, dy] = _shift_cost(a, b, dx, dy)
    best = min(tried, key=lambda k: (tried[k], k))
    a, b = prev.levels[0], cur.levels[0]
    return min((_shift_cost(a, b, 2 * best[0] + dx, 2 * best[1] + dy), 2 * best[0] + dx, 2 * best[1] + dy)
               for dx in (-1, 0, 1) for dy in (-1, 0, 1))[1:]


def _residual(prev: _Frame, cur: _Frame, shift: tuple[int, int]) -> float:
    """The softened frames' content score over their overlap at ``shift`` (inf: too little overlap)."""
    return _shift_cost(prev.soft, cur.soft, *shift)


class _Pair:
    """Two frames in a row as the detector measures them: the ``plain`` content score, the camera's ``shift`` and
    the ``moved`` score (:func:`_residual` at that shift); ``score`` is set once the shift after it is known."""

    def __init__(self, prev: Optional[_Frame], cur: _Frame, guess: tuple[int, int]):
        self.score: Optional[float] = None
        if prev is None:
            self.plain, self.moved, self.shift = 0.0, 0.0, (0, 0)
            return
        self.plain = _mean_change(prev.hsv, cur.hsv)
        self.shift = _best_shift(prev, cur, (guess, (0, 0)))
        self.moved = _residual(prev, cur, self.shift)


def _motion_score(prev: _Frame, cur: _Frame, pair: _Pair, before: tuple[int, int], after: tuple[int, int]) -> float:
    """The content score of ``cur`` after the camera's motion since ``prev`` is taken out (0-255): the smaller of the
    plain score and the softened frames' score over their overlap at the camera's shift. That shift is the best
    one (``pair.shift``) where it :func:`_follows` the shifts ``before`` and ``after`` it, else the better of
    those two (the camera moved as it did around the pair). A pan or shake, however fast, is explained by the
    shift (1-13 in constructed edits); a cut is not (13-100). See :func:`_reach`."""
    if _follows(pair.shift, (before, after), _reach((before, after), prev.hsv.shape[1])):
        return min(pair.plain, pair.moved)
    return min(pair.plain, _residual(prev, cur, before), _residual(prev, cur, after))


def _is_flash(before: Sequence[_Frame], after: Sequence[_Frame], motions: Sequence[tuple[int, int]],
              jump: float) -> bool:
    """Whether the jump from ``before[-1]`` to ``after[0]`` (its score ``jump``) comes back: some frame of
    ``after`` (the candidate and the ``FLASH`` frames past it) is close to some frame of ``before`` (the
    ``FLASH + 1`` frames before it) at most ``FLASH + 1`` frames away, where the camera went on moving by one of
    ``motions`` a frame (its shift just before the jump and just after it: one of them is the flash's own when the
    candidate is its way in or out). A flash, its way in and its way out, looks like a cut to the detector (two
    spikes that stand out from the scores around them); a cut never comes back."""
    reach = _reach(motions, before[0].hsv.shape[1])  # how far the camera may have strayed, as in _motion_score
    for i, b in enumerate(before):
        for j, a in enumerate(after, len(before)):
            if not 2 <= j - i <= FLASH + 1:  # 1: the jump itself; a flash of n frames leaves n + 1 frames apart
                continue
            expected = [((j - i) * m[0], (j - i) * m[1]) for m in motions]
            if _residual(b, a, _best_shift(b, a, expected, reach)) < FLASH_BACK * jump:
                return True
    return False


@lru_cache(maxsize=None)
def _compensated_detector():
    """PySceneDetect's ``AdaptiveDetector`` scoring each frame by its ``score`` attribute, set by the caller
    (:func:`_motion_score`) before each frame, instead of the plain content score (a class made on first use:
    scenedetect is imported only when cuts are detected)."""
    from scenedetect import AdaptiveDetector

    class MotionCompensatedDetector(AdaptiveDetector):
        score = 0.0

        def _calculate_frame_score(self, timecode, frame_img: np.ndarray) -> float:
            return self.score

    return MotionCompensatedDetector


class CutDetector:
    """Feed frames one at a time (e.g. while a file streams in); :meth:`cuts` gives the first frame of every new
    shot. ``threshold`` is the least content score of a cut (0-255, default ``MIN_SCORE``; lower finds more
    cuts); its motion-compensated score must also reach ``MIN_MOTION`` and stand out ``RATIO`` times from the
    compensated scores around it, and shots are at least ``min_shot`` frames. Memory is flat: the detector keeps
    the last ``2 * (FLASH + 1)`` shrunk frames, and a cut is known ``FLASH`` frames after it (a frame's score waits
    for the next frame's shift; the adaptive detector then waits ``WINDOW`` frames more)."""

    def __init__(self, threshold: Optional[float] = None, min_shot: int = MIN_SHOT):
        from scenedetect.common import FrameTimecode

        self._timecode = FrameTimecode
        # the minimum shot is kept here, after flashes are dropped: the detector's own would let a flash hide a
        # cut that follows it within min_shot frames
        self._detector = _compensated_detector()(
            adaptive_threshold=RATIO, window_width=WINDOW, min_scene_len=0,
            min_content_val=MIN_MOTION)
        self._threshold = MIN_SCORE if threshold is None else float(threshold)
        self._recent: deque[_Frame] = deque(maxlen=2 * (FLASH + 1))  # frames t-2*FLASH-1 .. t
        self._pairs: deque[_Pair] = deque(maxlen=2 * (FLASH + 1))  # _pairs[k]: recent[k - 1] -> recent[k]
        self._pending: list[int] = []  # candidates waiting for the FLASH frames after them
        self._found: list[int] = []
        self._min_shot = int(min_shot)
        self.frames = 0

    def feed(self, frame) -> None:
        small = _small_bgr(frame)
        current = _Frame(small)
        previous = self._recent[-1] if self._recent else None
        self._pairs.append(_Pair(previous, current, self._pairs[-1].shift if self._pairs else (0, 0)))
        self._recent.append(current)
        if self.frames >= 1:  # the frame before this one: its score now that the shift after it is known
            pairs, recent = self._pairs, self._recent
            pair = pairs[-2]
            if self.frames == 1:
                pair.score = 0.0
            else:
                pair.score = _motion_score(recent[-3], recent[-2], pair, pairs[-3].shift, pairs[-1].shift)
            self._detector.score = pair.score
            self._pending += [t.frame_num for t in self._detector.process_frame(
                self._timecode(self.frames - 1, _RATE), small)]
        while self._pending and self._pending[0] + FLASH <= self.frames:
            self._judge(self._pending.pop(0))
        self.frames += 1

    def _judge(self, cut: int) -> None:
        """Keep candidate ``cut`` unless it is a flash or too close to the cut before it (frames up to
        ``cut + FLASH`` are in)."""
        recent, pairs = list(self._recent), list(self._pairs)
        split = len(recent) - 1 - (self.frames - cut)  # recent[split] is the candidate's first frame
        if split <= 0:
            return
        pair = pairs[split]
        motions = (pairs[split - 1].shift, pairs[split + 1].shift)  # the camera's shifts before and after the jump
        if pair.plain >= self._threshold and cut - (self._found[-1] if self._found else 0) >= self._min_shot \
                and not _is_flash(recent[max(0, split - FLASH - 1):split], recent[split:split + FLASH + 1], motions,
                                  pair.score):
            self._found.append(cut)

    def watching(self, frames: Iterable) -> Iterator:
        """Yield ``frames`` unchanged, feeding each to the detector on the way (cuts found in the same pass over
        a file as the work that reads it)."""
        for frame in frames:
            self.feed(frame)
            yield frame

    @property
    def settled(self) -> int:
        """Frames before this one are settled: no cut before it is found later (work that must know a frame's
        shot -- grouping shots -- can follow ``LATENCY`` frames behind)."""
        return max(0, self.frames - max(LATENCY, self._min_shot))  # a cut closer to the end goes

    def found(self) -> list[int]:
        """The cuts found so far (the last ones may still go: see :meth:`cuts`)."""
        return list(self._found)

    def cuts(self) -> list[int]:
        cuts = list(self._found)
        # the minimum holds between cuts as they come: a cut just before the end would leave a last "shot" of a few
        # frames, so it joins the shot before it (the last frames are never judged as cuts: too few come after them)
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
        raise ShotError(f"cut{'s' if len(bad) > 1 else ''} {bad} outside the video's frames 1..{num_frames - 1}: "
                        "list the first frame of each new shot within the video")
    return out


def shot_bounds(num_frames: int, cuts: Sequence[int]) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` (end exclusive) of the shots that ``cuts`` split ``num_frames`` frames into."""
    edges = [0, *check_cuts(cuts, num_frames), num_frames]
    return list(zip(edges[:-1], edges[1:]))


def check_setups(groups: Optional[Sequence[int]], shots: int) -> list[int]:
    """``groups[shot]``: the first shot of the camera set-up each shot shows (a returning set-up names its earlier
    shot; None: every shot its own) -> that list, or a ShotError saying what is wrong."""
    if groups is None:
        return list(range(shots))
    groups = [int(g) for g in groups]
    if len(groups) != shots:
        raise ShotError(f"{len(groups)} set-up groups given for {shots} shot(s)")
    for shot, first in enumerate(groups):
        if not 0 <= first <= shot or groups[first] != first:
            raise ShotError(f"shot {shot + 1} returns to shot {first + 1}, which is not an earlier shot that starts "
                            "its own set-up")
    return groups
