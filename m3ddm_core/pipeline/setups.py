"""Returning set-ups (issue 33): the shots of an edit that show the same camera set-up (an interview's A camera,
cut back to after the B camera), grouped by how alike their frames look.

The rule (:func:`.outpaint.prepare` with ``groups="auto"``, the front-ends' ``setups`` option): the shots of one
group share their global frames (``linspace`` over all their frames, :func:`.encode.shot_global_frames`) and their
seed, so a returning shot is conditioned on the same picture of the set-up as the earlier one.

**The similarity.** Each shot keeps ``REPS`` grey thumbnails ``THUMB`` px wide (blurred by ``BLUR`` px): its third
frame (past a blended frame after the cut), the frame at the largest power of two into it (between its middle and
its end) and its last. Two shots' similarity is the best normalised cross-correlation of a thumbnail of one with a
thumbnail of the other over shifts of up to ``SHIFT`` px (about a tenth of the width): normalising (each
thumbnail less its mean, over its spread) takes out a lighting change, the shifts and the blur a reframing (a few
px, a zoom of a few percent), while two set-ups of one palette arranged differently do not correlate (colour is
not compared at all). A shot joins the earliest group whose shots (the first and the latest of each kept) reach
``SAME`` with it, else starts its own; its group's id is the index of the group's first shot, so A, B, A' gives
``[0, 1, 0]``. Memory: ``REPS`` thumbnails of the shot being read, and of at most two shots per group. Time: each
new shot against every kept thumbnail, all shifts at once (:func:`similarities`): a fast-cut edit of 150 shots
groups in about 5 s.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import cv2
import numpy as np

from .shots import _small_bgr

THUMB = 32  # px: thumbnail width; the height follows the aspect ratio
BLUR = 1.0  # px (of the thumbnail): a zoom of a few percent moves the edges by less
SHIFT = 3  # px (of the thumbnail): the largest reframing compared, about a tenth of the width
MIN_OVERLAP = 0.6  # least share of the thumbnail compared at a shift
REPS = 3  # thumbnails kept per shot
SAME = 0.7  # least similarity of two shots of one set-up (interview edits: one set-up 0.95-0.99, others 0.04-0.51)


def _thumb(frame) -> np.ndarray:
    """``[H, W, 3]`` frame (uint8, or float 0..1) -> ``[h, THUMB]`` float32 grey thumbnail, blurred."""
    small = _small_bgr(frame)
    h, w = small.shape[:2]
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    thumb = cv2.resize(grey, (THUMB, max(1, round(h * THUMB / w))), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(thumb.astype(np.float32), (0, 0), BLUR)


def similarities(a: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Best normalised cross-correlation of thumbnail ``a`` (``[h, w]``) with each of ``others`` (``[k, h, w]``)
    over shifts of up to ``SHIFT`` px, on their overlap (``[k]``, -1..1; 0 where either side is flat). All shifts and
    all others at once: ``a`` zero-padded, its ``(2 SHIFT + 1)^2`` shifted windows summed against each other (a
    fast-cut edit compares every new shot with every set-up kept so far)."""
    h, w = a.shape
    padded = np.zeros((h + 2 * SHIFT, w + 2 * SHIFT))
    padded[SHIFT:SHIFT + h, SHIFT:SHIFT + w] = a
    inside = np.zeros_like(padded)
    inside[SHIFT:SHIFT + h, SHIFT:SHIFT + w] = 1.0
    win, mask = (np.lib.stride_tricks.sliding_window_view(x, (h, w)) for x in (padded, inside))
    n = mask.sum((2, 3))  # the overlap at each shift
    sa, saa = win.sum((2, 3)), (win * win).sum((2, 3))
    b = np.asarray(others, np.float64)
    sb, sbb = np.einsum("ijhw,khw->kij", mask, b), np.einsum("ijhw,khw->kij", mask, b * b)
    sab = np.einsum("ijhw,khw->kij", win, b)
    cov, va, vb = sab - sa * sb / n, saa - sa * sa / n, sbb - sb * sb / n
    norm = np.sqrt(np.maximum(va, 0) * np.maximum(vb, 0))
    ncc = np.where(norm > 1e-6, cov / np.where(norm > 1e-6, norm, 1.0), 0.0)
    ncc[:, n < MIN_OVERLAP * h * w] = -1.0  # too little overlap: not compared
    return ncc.reshape(len(b), -1).max(1)


class ShotGrouper:
    """Feed an edit's frames one at a time with its ``cuts``; :meth:`finish` gives a group id per shot. Cuts found
    while the frames stream in are added with :meth:`cut` before the grouper reaches them
    (:class:`.edits.EditReader` does that)."""

    def __init__(self, cuts: Sequence[int] = (), same: float = SAME):
        self._cuts = sorted({int(c) for c in cuts} - {0})
        self._same = float(same)
        self._groups: list[tuple[int, list[list[np.ndarray]]]] = []  # (id, [first shot's reps, latest's])
        self._ids: list[int] = []
        self._reps: dict[str, np.ndarray] = {}
        self._start = 0
        self.frames = 0

    def cut(self, at: int) -> None:
        """A cut found later: the first frame of a new shot, not yet fed."""
        if at < self.frames or (self._cuts and at <= self._cuts[-1]):
            raise ValueError(f"cut {at} comes too late: the grouper is at frame {self.frames}")
        self._cuts.append(int(at))

    def feed(self, frame) -> None:
        self.feed_thumb(_thumb(frame))

    def feed_thumb(self, thumb: np.ndarray) -> None:
        """Feed a frame as its :func:`_thumb`."""
        if self._cuts and self.frames == self._cuts[0]:
            self._close()
            self._cuts.pop(0)
            self._start = self.frames
        k = self.frames - self._start
        if k <= 2:
            self._reps["first"] = thumb  # the third frame (or the last of a shorter shot)
        if k >= 4 and k & (k - 1) == 0:
            self._reps["middle"] = thumb
        self._reps["last"] = thumb  # every frame: the last one kept is the shot's last
        self.frames += 1

    def replan(self, cuts: Sequence[int]) -> None:
        """The cuts still ahead of the grouper, once they are final (those it passed stay)."""
        if any(c < self.frames for c in cuts):
            raise ValueError(f"cuts {sorted(cuts)} are not all ahead of frame {self.frames}")
        self._cuts = sorted({int(c) for c in cuts})

    def _close(self) -> None:
        """Group the shot just read."""
        if not self._reps:
            return
        reps = list({id(v): v for v in self._reps.values()}.values())
        self._reps = {}
        shot = len(self._ids)
        owners = [g for g, (_, kept) in enumerate(self._groups) for shot_reps in kept for _ in shot_reps]
        if owners:  # every kept thumbnail of every group against this shot's, at once
            kept_reps = np.stack([r for _, kept in self._groups for shot_reps in kept for r in shot_reps])
            best = np.max([similarities(x, kept_reps) for x in reps], axis=0)
            reached = np.flatnonzero(best >= self._same)
            if len(reached):
                gid, kept = self._groups[owners[reached[0]]]  # the earliest group it reaches
                self._ids.append(gid)
                kept[1:] = [reps]  # the first shot and the latest: a set-up that drifts is still followed
                return
        self._ids.append(shot)
        self._groups.append((shot, [reps]))

    def finish(self) -> list[int]:
        self._close()
        return list(self._ids)


def group_shots(frames: Iterable, cuts: Sequence[int], same: Optional[float] = None) -> list[int]:
    """A group id per shot (``len(cuts) + 1`` of them, in order): the index of the first shot of the same camera
    set-up. ``frames``: ``[N, H, W, 3]`` tensor/array or any iterable of ``[H, W, 3]`` frames, uint8 or float 0..1;
    ``cuts``: first frames of new shots (as ``detect_cuts`` gives them)."""
    grouper = ShotGrouper(cuts, SAME if same is None else same)
    for frame in frames:
        grouper.feed(frame)
    return grouper.finish()
