"""Shots: where an edited video cuts from one shot to the next, so that each shot is outpainted as its own video
(its own global frames and coarse-to-fine schedule; no guide frame across a cut).

Cuts are found by PySceneDetect's ``ContentDetector`` (frame-to-frame change of hue, saturation and luma with a
flash filter and a minimum shot length), run on frames shrunk to at most ``DETECT_WIDTH`` pixels wide.
"""
from __future__ import annotations

import re
from fractions import Fraction
from typing import Iterable, Iterator, Optional, Sequence

import cv2
import numpy as np
import torch

DETECT_WIDTH = 256  # the detector's scores barely change below this width; shrinking makes 4K as cheap as 360p
MIN_SHOT = 15  # frames: a shorter "shot" is a flash or a wipe, not a cut (PySceneDetect's default)
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


class CutDetector:
    """Feed frames one at a time (e.g. while a file streams in); :meth:`cuts` gives the first frame of every new
    shot. ``threshold`` is the ContentDetector score (default 27; lower finds more cuts)."""

    def __init__(self, threshold: Optional[float] = None, min_shot: int = MIN_SHOT):
        from scenedetect import ContentDetector
        from scenedetect.common import FrameTimecode

        self._timecode = FrameTimecode
        kwargs = {} if threshold is None else {"threshold": float(threshold)}
        self._detector = ContentDetector(min_scene_len=int(min_shot), **kwargs)
        self._found: list[int] = []
        self._min_shot = int(min_shot)
        self._total: Optional[int] = None
        self.frames = 0

    def feed(self, frame) -> None:
        found = self._detector.process_frame(self._timecode(self.frames, _RATE), _small_bgr(frame))
        self._found += [t.frame_num for t in found]
        self.frames += 1

    def watching(self, frames: Iterable) -> Iterator:
        """Yield ``frames`` unchanged, feeding each to the detector on the way (cuts found in the same pass over
        a file as the work that reads it)."""
        for frame in frames:
            self.feed(frame)
            yield frame

    def cuts(self) -> list[int]:
        if self.frames:
            last = self._timecode(self.frames - 1, _RATE)
            self._found += [t.frame_num for t in self._detector.post_process(last)]
            self._total, self.frames = self.frames, 0  # post-processing happens once
        cuts = sorted({c for c in self._found if c > 0})
        # the detector keeps its minimum between cuts only: a cut just before the end would leave a last "shot"
        # of a few frames (a flash or fade-out), so it joins the shot before it
        while cuts and self._total is not None and self._total - cuts[-1] < self._min_shot:
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


def shot_seed(seed: int, shot: int) -> int:
    """The seed of shot ``shot``: the first shot keeps ``seed`` (a one-shot video samples exactly as before), the
    others get seeds derived from it, so re-running with the same seed reproduces every shot."""
    return int(seed) if shot == 0 else (int(seed) + 1_000_003 * shot) % (2 ** 63)
