"""Gradual transitions (issue 33): dissolves and fades found in an edited video, with the share of the incoming
picture in every blended frame, and the rule that blends the outpainted borders in step with the picture.

Wired (:class:`.edits.EditReader`, :func:`shot_cuts`, :class:`BorderBlend`): with detected shots a dissolve
splits its shots at its middle and the borders of blended frames are crossfaded between the two shots' held
borders -- the rule below with ``border_A`` / ``border_B`` held at the last and first unblended frames, since
the plan samples every frame once. ``detect_cuts`` marks
a fade with a cut at the fade in's first frame (fade out straight into fade in: one cut, at the end of the fade
out) and, where black is held between them, also at the first black frame (the hold becomes a shot); it marks no
dissolve (constructed edits, 160x90). :func:`cuts_in` gives those cuts: the integrator replaces them by the
transitions.

**Detection.** Every frame is shrunk to a ``THUMB`` px wide colour thumbnail (small camera moves and noise average
out). A dissolve of ``A`` (the last frame before it) into ``B`` (the first frame after it) makes every blended frame
``t`` close to ``(1 - w_t) A + w_t B`` with ``w_t`` rising from 0 to 1; ``w_t`` is the least-squares fit on the
thumbnails and the fit's residual (relative to ``|B - A|²``) says whether the frame is such a blend. A dissolve is
kept where every frame between ``A`` and ``B`` fits (residual at most ``FIT``), the weights rise by at most ``STEP``
a frame (a hard cut jumps by 1), and ``A`` and ``B`` are two pictures: they differ (``SEPARATION``), neither is dark
or flat (then it is a fade, or a flash), and their structure (thumbnails less their mean, over their spread) does not
correlate by ``SAME`` or more (a lighting change of one picture fits a blend of its ends exactly). A fade out is a
dissolve into black (``B = 0``): ``w_t = 1 - <t, A> / |A|²``; it must reach black (``w`` of at least ``DEPTH`` and
mean brightness at most ``BLACK`` of 255: a dimmer that stops short of black is a lighting change), and every frame
not yet black must still show ``A``'s structure (correlation with the frame before it at least ``KEEP``: the
first frame of the fade in that follows it is as dark, but shows the next shot). A fade in is the same, from black
to ``B``. Pans and shake do not fit a blend of their ends (the middle of a pan is neither end), a flash fails the
steps or the correlation.

**Dissolves out of a moving picture.** Out of a pan of more than about 3% of the width a frame the outgoing picture
has moved on, and no blend of fixed ends fits. So every frame that ends ``BASELINE`` frames of steady motion (phase
correlation on ``MOTION``-px grey thumbnails; shake is not steady) is followed at its speed: its picture, moved on,
is fitted into each later frame while it still covers ``COVER`` of it. A pan keeps its share near 1; a dissolve
makes it fall along a straight line. Where at least ``RAMP`` shares lie between 0.1 and 0.9 within ``LINE`` of a
line, the line gives the blended frames and their weights; the candidate is kept once its end frame is in, if that
frame is another picture (not moving on with the followed one: a dimming pan; not dark or flat; not the same
structure) and every followed frame fits as the moved picture plus the end frame (residual at most
``FIT_MOVING``; a whip pan or a zoom does not). A dissolve *into* a moving picture is the mirror: every frame that
starts ``BASELINE`` frames of steady motion is followed back at that speed, and where its share falls along a
straight line going back from the frame just before it (it must be that frame's own picture: the line may not blend
the frame itself by more than ``EDGE``), the line gives the blended frames, checked as above with the still picture
before them. Faster than about 11% of the width a frame, the shift over the ``BASELINE`` frames is too large for
one correlation, and the mean of the frames' own shifts is the speed; the moved picture then covers the frame for
only 3-4 frames, so the ramp counts from shares of ``2 * EDGE``. Where the still picture does not fit, it may be
moving too (a pan into a pan): checked with both pictures moved at their own speeds (the incoming one's measured
``BASELINE`` frames after the end), each frame's fitted mix within ``MIX`` of the line, on at least ``RAMP`` frames
both cover. ``benchmarks/transitions.py --moving`` measures into, out of and between pans at 3-20% a frame; a
dissolve shorter than 4 frames is not looked for this way.

Frames stream (:class:`TransitionDetector`): the thumbnails of the last ``max_length + HOLD + 2`` frames and their
dot products are kept, so all fits for a new last frame come from a small Gram matrix; a transition is reported
``HOLD`` frames after its end (or at :meth:`TransitionDetector.finish`).

**The rule (for the integrator).** A dissolve's blended frames belong to both shots: each side outpaints them
conditioned on its own shot (shot A's pass runs on through ``end - 1``, shot B's starts at ``start``), and the output
border of frame ``t`` is ``(1 - w_t) * border_A(t) + w_t * border_B(t)``, ``w_t`` the picture's measured share of
the incoming shot (:func:`blend_borders`). A fade is a dissolve to or from black: a fade out's border is
``(1 - w_t) * border_A(t)`` (black as the incoming border), a fade in's ``w_t * border_B(t)``; frames of black between
them belong to no shot and stay black. ``benchmarks/transitions.py`` measures detection and weights.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

import cv2
import numpy as np

from .shots import _small_bgr

THUMB = 32  # px: thumbnail width; the height follows the aspect ratio
COARSE = 8  # px: the width of the grey thumbnail that compares structure (a drift of a tenth of the width: 1 px)
MAX_LENGTH = 60  # frames: the longest transition found (2 s at 30 fps)
MIN_LENGTH = 2  # frames: the shortest (one blended frame is a frame-rate conversion's, see shots.py)
HOLD = 4  # frames after a transition's end before it is reported (the end is the last frame that fits)
FIT = 0.08  # most residual of a blended frame's fit, over |B - A|^2
STEP = 0.4  # most rise of the weight from one frame to the next (a hard cut: 1)
BACK = 0.06  # most fall of the weight from one frame to the next (noise, motion)
EDGE = 0.03  # weights within this of 0 or 1 are the shots' own frames, not blended
SEPARATION = 8.0  # least RMS difference of A and B (0-255): two pictures, not one shot's noise
SAME = 0.5  # least structure correlation of A and B that makes them one picture (relit, moved a little)
FLAT = 4.0  # std (0-255) under which a thumbnail is flat (white, black, a card)
BLACK = 30.0  # most mean brightness (0-255) of a fade's black end
DEPTH = 0.75  # least share of black at a fade's black end
KEEP = 0.5  # least structure correlation with its shot of a frame of a fade (not yet black)
MOTION = 64  # px: width of the grey thumbnail a moving picture is followed on
MOVING = 0.01  # least shift a frame (share of the width) of a moving picture (slower ones fit fixed ends)
TRACKED = 0.5  # least phase-correlation response of a followed shift (pans: 0.6-1; blur and shake give less)
STEADY = 0.75  # px (of MOTION): most change of the shift from one frame to the next of a steady move (not shake)
BASELINE = 4  # frames: the speed is measured over this many (one frame's shift is a tenth of a px off, a misfit
# that grows over a long dissolve)
COVER = 0.4  # least share of a frame the followed picture, moved on, still covers
RAMP = 3  # least followed frames whose share of the picture is between 0.1 and 0.9 (a dissolve of 4+ frames)
LINE = 0.05  # most RMS distance of those shares from their line (a dissolve is a straight ramp)
FIT_MOVING = 0.12  # most residual of a frame's fit as the moved picture and the incoming one, over their |B - A|^2
MIX = 0.15  # most difference of a frame's fitted share of the incoming picture from the line's, both moving


@dataclass(frozen=True)
class Transition:
    """Frames ``start`` .. ``end - 1`` blended; ``kind``: ``"dissolve"``, ``"fade_out"`` (into black) or
    ``"fade_in"`` (out of black); ``weights[k]``: the incoming picture's share in frame ``start + k`` (0..1,
    non-decreasing; black is the incoming picture of a fade out)."""
    start: int
    end: int
    kind: str
    weights: tuple[float, ...]

    def weight(self, frame: int) -> float:
        """The incoming share at ``frame``: 0 before the transition, 1 from ``end`` on."""
        if frame < self.start:
            return 0.0
        if frame >= self.end:
            return 1.0
        return self.weights[frame - self.start]


    @property
    def middle(self) -> int:
        """The first blended frame where the incoming picture has the larger share: where a dissolve's shots are
        split."""
        return self.start + next((k for k, w in enumerate(self.weights) if w >= 0.5), len(self.weights) - 1)


def transition_at(transitions: Sequence[Transition], frame: int) -> Optional[Transition]:
    """The transition whose blended frames hold ``frame``, if any."""
    return next((t for t in transitions if t.start <= frame < t.end), None)


def blend_borders(transition: Transition, frame: int, border_before=None, border_after=None, black: float = 0.0):
    """The output border of ``frame`` under the rule of the module docstring: ``(1 - w) * border_before + w *
    border_after``, ``w`` = ``transition.weight(frame)``; ``border_before`` is the outgoing shot's outpainting of
    the frame (``None`` for a fade in: black), ``border_after`` the incoming shot's (``None`` for a fade out). Any
    arrays or tensors of one shape (e.g. ``[H, W, 3]`` 0..1); ``black``: black's value in their range (-1 for
    latents' pixel range -1..1)."""
    w = transition.weight(frame)
    if border_before is None and border_after is None:
        raise ValueError("blend_borders needs at least one shot's border")
    before = border_after * 0 + black if border_before is None else border_before
    after = border_before * 0 + black if border_after is None else border_after
    return before * (1 - w) + after * w


def cuts_in(cuts: Sequence[int], transitions: Sequence[Transition]) -> list[int]:
    """The cuts that mark a transition (a cut from its first blended frame to one past its end): the ones the
    integrator replaces by the transition."""
    return [c for c in cuts if any(t.start <= c <= t.end for t in transitions)]


def shot_cuts(cuts: Sequence[int], transitions: Sequence[Transition]) -> list[int]:
    """The cuts an edit is outpainted with, given its hard ``cuts`` and its ``transitions``: a dissolve splits its
    two shots at its :attr:`~Transition.middle` (a cut found inside it goes); fades keep the cuts found at them
    (``detect_cuts`` puts one where the picture comes out of black)."""
    dissolves = [t for t in transitions if t.kind == "dissolve"]
    kept = {int(c) for c in cuts if not any(t.start <= c <= t.end for t in dissolves)}
    return sorted(kept | {t.middle for t in dissolves})


class BorderBlend:
    """The borders of a transition's blended frames, as the picture blends (the rule as wired, see the module
    docstring): frame ``t`` of a dissolve gets ``(1 - w_t) * border(start - 1) + w_t * border(end)`` -- the two
    shots' borders at their last and first unblended frames, crossfaded in step with the picture; a fade out
    ``(1 - w_t) * border(start - 1)`` (to black), a fade in ``w_t * border(end)``. ``border(frame)`` gives a
    frame's outpainted working canvas (``[ch, cw, 3]`` 0..1, e.g. decoded from its latent); each held one is
    asked for once. A transition whose held frame is outside ``0 .. count - 1`` (cut off by a trim or the video's
    end) is left as sampled."""

    def __init__(self, transitions: Sequence[Transition], count: int, border):
        self._transitions = [t for t in transitions if (t.kind == "fade_in" or t.start >= 1)
                             and (t.kind == "fade_out" or t.end <= count - 1)]  # its held frames exist
        self._border = border
        self._held: dict = {}

    def _get(self, frame: int):
        if frame not in self._held:
            self._held[frame] = self._border(frame)
        return self._held[frame]

    def __call__(self, frame: int, canvas):
        """``canvas`` (frame ``frame``'s own) or, inside a transition, the blended border."""
        t = transition_at(self._transitions, frame)
        if t is None:
            return canvas
        before = None if t.kind == "fade_in" else self._get(t.start - 1)
        after = None if t.kind == "fade_out" else self._get(t.end)
        return blend_borders(t, frame, before, after)

    def applies(self) -> bool:
        return bool(self._transitions)


def _thumbs(frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[H, W, 3]`` frame (uint8, or float 0..1 array/tensor) -> (flat float64 colour thumbnail ``THUMB`` px
    wide, 0..255; flat grey thumbnail ``COARSE`` px wide less its mean, over its norm (zeros where flat); float32
    grey thumbnail ``MOTION`` px wide, ``[h, MOTION]``)."""
    small = _small_bgr(frame)
    h, w = small.shape[:2]
    motion = cv2.resize(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (MOTION, max(1, round(h * MOTION / w))),
                        interpolation=cv2.INTER_AREA).astype(np.float32)
    thumb = cv2.resize(small, (THUMB, max(1, round(h * THUMB / w))), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(thumb, cv2.COLOR_BGR2GRAY).astype(np.float64)
    coarse = cv2.resize(grey, (COARSE, max(1, round(h * COARSE / w))), interpolation=cv2.INTER_AREA).ravel()
    coarse -= coarse.mean()
    norm = np.linalg.norm(coarse)
    # noise floor: below 0.25 of 255 per value the structure is noise (a black frame, a white card)
    coarse = coarse / norm if norm > 0.25 * np.sqrt(coarse.size) else np.zeros_like(coarse)
    return thumb.astype(np.float64).ravel(), coarse, motion


def _moved(grey: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """``grey`` moved by ``shift`` (x, y px), NaN where nothing of it lands."""
    m = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    return cv2.warpAffine(grey, m, (grey.shape[1], grey.shape[0]), flags=cv2.INTER_LINEAR, borderValue=np.nan)


def _moving_fit(frame: np.ndarray, moved: np.ndarray, after: Optional[np.ndarray] = None):
    """``frame`` as ``s * moved + w * after`` (each less its mean, where both land; ``after`` may be moved too):
    ``(s, w, residual over |after - moved|^2)``; without ``after``: ``(s, 0, 1)``. None where they cover less than
    ``COVER`` of it."""
    known = ~np.isnan(moved) if after is None else ~np.isnan(moved) & ~np.isnan(after)
    if known.mean() < COVER:
        return None
    x, a = frame[known], moved[known]
    x, a = x - x.mean(), a - a.mean()
    aa = float(a @ a)
    if after is None:
        return float(x @ a) / max(aa, 1e-9), 0.0, 1.0
    b = after[known]
    b = b - b.mean()
    ab, bb = float(a @ b), float(b @ b)
    det = aa * bb - ab * ab
    if det <= 1e-9 * max(aa * bb, 1e-9):
        return None
    xa, xb = float(x @ a), float(x @ b)
    s, w = (xa * bb - xb * ab) / det, (xb * aa - xa * ab) / det
    return s, w, (float(x @ x) - s * xa - w * xb) / max(aa - 2 * ab + bb, 1e-9)


def _travel(frame: int, speed: tuple[float, float]) -> Callable[[int], tuple[float, float]]:
    """Where the picture of frame ``frame``, moving at ``speed`` (px a frame), is at frame ``t`` (before it: back)."""
    return lambda t: ((t - frame) * speed[0], (t - frame) * speed[1])


@dataclass
class _Followed:
    """A steadily moving frame's picture, followed into the frames after it at its speed: its share of each."""
    speed: tuple[float, float]
    shares: list = field(default_factory=list)
    done: bool = False


class TransitionDetector:
    """Feed frames one at a time; :meth:`finish` gives the transitions in order. Memory is flat: the thumbnails
    of the last ``max_length + HOLD + 2`` frames (7 KB each) and their dot products."""

    def __init__(self, cuts: Sequence[int] = (), max_length: int = MAX_LENGTH):
        self._keep = int(max_length) + HOLD + 2
        self._max = int(max_length)
        self._cuts = sorted(int(c) for c in cuts)
        self._thumbs: deque[np.ndarray] = deque()
        self._coarse: deque[np.ndarray] = deque()
        self._grey: deque[np.ndarray] = deque()
        self._shift: deque[tuple[float, float, float]] = deque()  # each frame's shift from the one before, response
        self._window: Optional[np.ndarray] = None
        self._followed: dict[int, _Followed] = {}  # by frame
        self._pending: list[tuple[int, int, int, tuple]] = []  # moving dissolves awaiting their end: start, end,
        # the followed frame, the line of the shares
        self._both: list[tuple[int, int, int, tuple]] = []  # the same whose end picture moves too: awaiting its speed
        self._gram = np.zeros((0, 0))
        self._found: list[Transition] = []
        self._event: Optional[tuple[str, int, int]] = None  # the transition being followed: kind, start, end
        self.frames = 0

    # --- the Gram matrix of the kept thumbnails: every fit below is a few of its entries
    def feed(self, frame) -> None:
        x, coarse, grey = _thumbs(frame)
        shift = self._track(grey)
        if len(self._thumbs) == self._keep:
            self._thumbs.popleft()
            self._coarse.popleft()
            self._grey.popleft()
            self._shift.popleft()
            self._gram = self._gram[1:, 1:]
        self._thumbs.append(x)
        self._coarse.append(coarse)
        self._grey.append(grey)
        self._shift.append(shift)
        row = np.array([float(x @ y) for y in self._thumbs])
        n = len(self._thumbs)
        gram = np.empty((n, n))
        gram[:-1, :-1] = self._gram
        gram[-1, :] = gram[:, -1] = row
        self._gram = gram
        self.frames += 1
        self._look()
        self._follow()

    # --- dissolves out of a moving picture: they fit no blend of fixed ends (the middle of a pan is neither end)
    def _track(self, grey: np.ndarray) -> tuple[float, float, float]:
        """The shift (x, y px) from the newest kept frame to ``grey`` and its phase-correlation response."""
        if not self._grey or self._grey[-1].shape != grey.shape:
            return 0.0, 0.0, 0.0
        if self._window is None or self._window.shape != grey.shape:
            self._window = cv2.createHanningWindow(grey.shape[::-1], cv2.CV_32F)
        (dx, dy), response = cv2.phaseCorrelate(self._grey[-1], grey, self._window)
        return float(dx), float(dy), float(response)

    def _speed(self, a: int) -> Optional[tuple[float, float]]:
        """Kept frame ``a``'s picture's shift a frame where it moved steadily by at least ``MOVING`` of the width
        over the ``BASELINE`` frames before it (a pan, not shake), else None."""
        if a < BASELINE:
            return None
        shifts = np.array([self._shift[k] for k in range(a - BASELINE + 1, a + 1)])
        if shifts[:, 2].min() < TRACKED or np.hypot(*shifts[-1, :2]) < MOVING * self._grey[a].shape[1] \
                or np.hypot(*(shifts[:, :2] - shifts[-1, :2]).T).max() > STEADY:
            return None
        mean = shifts[:, :2].mean(0)
        if np.hypot(*mean) * BASELINE > 0.45 * self._grey[a].shape[1]:  # a correlation across it would wrap around
            return float(mean[0]), float(mean[1])
        (dx, dy), _ = cv2.phaseCorrelate(self._grey[a - BASELINE], self._grey[a], self._window)
        return dx / BASELINE, dy / BASELINE

    def _follow(self) -> None:
        """Follow every moving picture into the newest frame; a followed picture that is replaced along a straight
        ramp is a dissolve candidate, checked once the frame after its end is in."""
        last = len(self._grey) - 1
        newest = self.frames - 1
        for frame in [f for f in self._followed if self._index(f) < 0]:
            del self._followed[frame]
        speed = self._speed(last)
        if speed is not None:
            self._followed[newest] = _Followed(speed)
            self._follow_back(newest - BASELINE, speed)  # the same motion is the one out of that frame
        for frame, f in self._followed.items():
            k = newest - frame
            if f.done or k < 1:
                continue
            a = self._index(frame)
            fit = _moving_fit(self._grey[last], _moved(self._grey[a], (k * f.speed[0], k * f.speed[1])))
            if fit is not None:
                f.shares.append(fit[0])
            if fit is None or fit[0] <= 0.1 or k >= self._max:
                f.done = True
                self._ramp(frame, f)
        for item in [p for p in self._pending if p[1] <= newest]:
            self._pending.remove(item)
            self._check_moving(*item)
        for item in [p for p in self._both if p[1] + BASELINE <= newest]:
            self._both.remove(item)
            self._check_moving(*item, end_moves=True)

    @staticmethod
    def _line(y: np.ndarray, low: float = 0.1) -> Optional[tuple[float, float, int]]:
        """The straight ramp in ``y`` (``y[k - 1]``: the share of the other picture ``k`` frames from the followed
        one): ``(slope, intercept, n)`` of the line through its ``n`` values between ``low`` and 0.9 (at least
        ``RAMP`` of them, in a row, within ``LINE`` of it), from nearly none a frame away; else None."""
        ramp = np.flatnonzero((y > low) & (y < 0.9))
        if len(ramp) < RAMP or y[0] > 0.25 or ramp[-1] - ramp[0] != len(ramp) - 1:
            return None
        k = ramp + 1.0
        slope, icpt = np.polyfit(k, y[ramp], 1)
        if slope <= 0 or np.sqrt(np.mean((icpt + slope * k - y[ramp]) ** 2)) > LINE:
            return None
        return float(slope), float(icpt), len(ramp)

    def _ramp(self, frame: int, f: _Followed) -> None:
        """A dissolve candidate where ``frame``'s followed picture fell along a straight line."""
        line = self._line(1.0 - np.array(f.shares))
        if line is None:
            return
        slope, icpt, n = line
        start = frame + max(1, int(np.floor(-icpt / slope)) + 1)
        end = frame + int(np.ceil((1 - icpt) / slope))
        if end - start < MIN_LENGTH or end - frame > self._max:
            return
        rival = next((p for p in self._pending if p[0] < end and start < p[1]), None)
        if rival is None or n > rival[3][2]:
            if rival is not None:
                self._pending.remove(rival)
            self._pending.append((start, end, frame, (slope, icpt, n)))

    def _follow_back(self, end: int, speed: tuple[float, float]) -> None:
        """Dissolves into a moving picture (the mirror of following one out): frame ``end`` starts ``BASELINE``
        frames of steady motion at ``speed``; its picture, moved back, is fitted into each earlier frame. Where its
        share falls along a straight line going back (from the frame just before it: otherwise no dissolve ends
        here), the line gives the blended frames, checked at once (every frame is in)."""
        b = self._index(end)
        shares: list[float] = []
        for k in range(1, min(self._max, b) + 1):
            fit = _moving_fit(self._grey[b - k], _moved(self._grey[b], (-k * speed[0], -k * speed[1])))
            if fit is None or k == 1 and fit[0] >= 1 - EDGE:
                break
            shares.append(fit[0])
            if fit[0] <= 0.1:
                break
        # from a fast pan only a few frames are covered: the ramp counts from the first clearly blended one
        line = self._line(1.0 - np.array(shares), low=2 * EDGE) if shares else None
        if line is None or line[1] > EDGE:  # the line still blends frame `end`: it lies inside the dissolve
            return
        slope, icpt, _ = line
        start = end - int(np.ceil((1 - icpt) / slope)) + 1
        stop = end - max(0, int(np.floor(-icpt / slope)))
        a = self._index(start - 1)
        if stop - start < MIN_LENGTH or a < 0 or any(stop < c <= end for c in self._cuts):
            return
        sa, sb = self._shift[a], self._shift[b + 1]
        if np.hypot(sa[0] - sb[0], sa[1] - sb[1]) < MOVING * self._grey[b].shape[1]:
            return  # the frame before it moves on with it: one picture (a pan that brightens), not two
        weights = [1.0 - (icpt + slope * (end - t)) for t in range(start, stop)]
        if not self._add_moving(a, b, start, stop, weights, None, _travel(b, speed)):
            before = self._speed(a)  # the picture before it may be moving too (a pan into a pan)
            if before is not None:
                self._add_moving(a, b, start, stop, weights, _travel(a, before), _travel(b, speed))

    def _check_moving(self, start: int, end: int, frame: int, line: tuple, end_moves: bool = False) -> None:
        """Report the candidate if frame ``end`` is another picture, not the followed one moving on (a pan), and
        every followed frame fits as the moved picture plus the picture at ``end`` -- standing still, or, where it
        does not fit so, moving at its own speed (``end_moves``: tried ``BASELINE`` frames later, once measured)."""
        a, b = self._index(frame), self._index(end)
        if a < 0 or b >= len(self._grey) or any(frame < c < start for c in self._cuts):
            return
        f = self._followed.get(frame)
        sa, sb = self._shift[a], self._shift[b]
        if f is None or np.hypot(sa[0] - sb[0], sa[1] - sb[1]) < MOVING * self._grey[a].shape[1]:
            return
        after = self._speed(b + BASELINE) if end_moves and b + BASELINE < len(self._grey) else None
        if end_moves and after is None:
            return
        slope, icpt, _ = line
        weights = [icpt + slope * (t - frame) for t in range(start, end)]
        moving_end = None if after is None else _travel(b, after)
        if not self._add_moving(a, b, start, end, weights, _travel(a, f.speed), moving_end) and not end_moves:
            self._both.append((start, end, frame, line))

    def _add_moving(self, a: int, b: int, start: int, end: int, weights: Sequence[float], shift_a, shift_b) -> bool:
        """Report the dissolve of kept frames ``a`` (the last before it) and ``b`` (the first after it) over
        ``start`` .. ``end - 1`` if they are two pictures (neither dark nor flat, not the same structure) and every
        frame between fits as their pictures, each moved by its ``shift_a(t)`` / ``shift_b(t)`` (None: standing
        still) -- the followed one's nearest frames first, as far as the moved pictures cover the frame. False
        where a frame does not fit (the caller may try the other picture moving too)."""
        mean, std, corr = self._stats()
        if (mean[[a, b]] <= BLACK).any() or (std[[a, b]] < FLAT).any() or corr[a, b] >= SAME:
            return True
        both = shift_a is not None and shift_b is not None
        fitted = 0
        for t in (range(a + 1, b) if shift_a is not None else range(b - 1, a, -1)):
            pa = self._grey[a] if shift_a is None else _moved(self._grey[a], shift_a(t))
            pb = self._grey[b] if shift_b is None else _moved(self._grey[b], shift_b(t))
            fit = _moving_fit(self._grey[t], *((pa, pb) if shift_a is not None else (pb, pa)))
            if fit is None and both:
                continue  # each covers the frame from its own side: the middle frames are the ones to fit
            if fit is None:
                break
            if fit[2] > FIT_MOVING:
                return False
            frame = self.frames - len(self._grey) + t
            line = weights[frame - start] if start <= frame < end else float(frame >= end)
            if both and abs(fit[1] / max(fit[0] + fit[1], 1e-9) - line) > MIX:
                return False  # both moving, any mix of them fits: the frame's own mix must be the line's
            fitted += 1
        if both and fitted < RAMP:
            return True  # moving apart, they cover too little of the same frames to show a blend
        if any(t.start < end and start < t.end for t in self._found) or \
                self._event is not None and self._event[1] < end and start < self._event[2]:
            return True
        self._found.append(Transition(start, end, "dissolve", tuple(float(np.clip(w, 0.0, 1.0)) for w in weights)))
        self._found.sort(key=lambda t: t.start)
        return True

    def _index(self, frame: int) -> int:
        return frame - (self.frames - len(self._thumbs))

    def _stats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per kept thumbnail: mean (0-255), std, and the structure correlation matrix (``[n, n]``, of the coarse
        grey thumbnails: a drift, a lighting change or a fade keeps it, another picture does not; 0 where flat)."""
        t = np.stack(self._thumbs)
        mean = t.mean(1)
        std = t.std(1)
        coarse = np.stack(self._coarse)
        return mean, std, coarse @ coarse.T

    def _candidates(self, last: int) -> list[tuple[str, int, int]]:
        """Transitions that fit with the kept frame ``last`` (an index into the kept ones) as their end: (kind,
        first blended frame, end), absolute frame numbers, ends trimmed to the frames that are blended."""
        g = self._gram
        mean, std, corr = self._stats()
        d = len(self._thumbs[0])
        base = self.frames - len(self._thumbs)
        dark = (mean <= BLACK) | (std < FLAT)
        found = []
        for a in range(max(0, last - self._max - 1), last - MIN_LENGTH):
            ts = np.arange(a + 1, last)
            # dissolve from A = a to B = last
            dd = g[last, last] - 2 * g[a, last] + g[a, a]
            if not dark[a] and not dark[last] and dd / d >= SEPARATION ** 2 and corr[a, last] < SAME:
                w = (g[ts, last] - g[ts, a] - g[a, last] + g[a, a]) / dd
                res = (g[ts, ts] - 2 * g[ts, a] + g[a, a] - w * w * dd) / dd
                span = self._trim(w, a)
                if span and res.max() <= FIT and self._rises(w):
                    found.append(("dissolve", *span))
            # fade out from A = a into black, reaching it at `last` (weights of frames a+1 .. last)
            aa = g[a, a]
            if not dark[a]:
                ts1 = np.arange(a + 1, last + 1)
                w = 1 - g[ts1, a] / aa
                res = (g[ts1, ts1] - g[ts1, a] ** 2 / aa) / aa
                # each frame not yet black shows the one before it (a chain: the camera may move in a fade)
                shows = (w >= 1 - EDGE) | (corr[ts1, ts1 - 1] >= KEEP)
                if w[-1] >= DEPTH and mean[last] <= BLACK and res.max() <= FIT and shows.all() \
                        and self._rises(np.append(w, 1.0)):
                    span = self._trim(w, a)  # black frames (w ~ 1) at its end are left out
                    if span:
                        found.append(("fade_out", *span))
            # fade in from black at a into B = last (weights of frames a .. last-1)
            bb = g[last, last]
            if not dark[last] and mean[a] <= BLACK:
                ts0 = np.arange(a, last)
                w = g[ts0, last] / bb
                res = (g[ts0, ts0] - g[ts0, last] ** 2 / bb) / bb
                shows = (w <= EDGE) | (corr[ts0, ts0 + 1] >= KEEP)
                if w[0] <= 1 - DEPTH and res.max() <= FIT and shows.all() and self._rises(np.append(0.0, w)):
                    span = self._trim(w, a - 1)  # black frames (w ~ 0) at its start are left out
                    if span:
                        found.append(("fade_in", *span))
        out = []
        for kind, s, e in found:
            s, e = s + base, e + base
            # a known hard cut may lie in a transition (a detector marking it) but not between it and its ends
            anchor_a, anchor_b = s - 1, e
            if not any(anchor_a < c < s or e < c <= anchor_b for c in self._cuts):
                out.append((kind, s, e))
        return out

    @staticmethod
    def _rises(w: np.ndarray) -> bool:
        """Weights from 0 (the frame before) to 1 (the frame after), rising by at most ``STEP`` a frame."""
        steps = np.diff(np.concatenate(([0.0], w, [1.0])))
        return bool(steps.max() <= STEP and steps.min() >= -BACK and w.min() >= -BACK and w.max() <= 1 + BACK)

    @staticmethod
    def _trim(w: np.ndarray, a: int) -> Optional[tuple[int, int]]:
        """Weights ``w`` of kept frames ``a + 1`` ..: the blended ones (kept indexes, end exclusive), the shots'
        own frames (within ``EDGE`` of 0 at the start, of 1 at the end) left out; None if fewer than
        ``MIN_LENGTH``."""
        inside = np.flatnonzero((w > EDGE) & (w < 1 - EDGE))
        if len(inside) < MIN_LENGTH:
            return None
        return a + 1 + int(inside[0]), a + 2 + int(inside[-1])

    def _look(self) -> None:
        """Follow the transition that fits with the newest frame as its end; report it once it stops fitting or
        ``HOLD`` frames have passed its end."""
        last = len(self._thumbs) - 1
        found = self._candidates(last) if last >= MIN_LENGTH + 1 else []
        if found:
            # the longest of the ones ending here (the earliest start: trimmed to the blended frames anyway)
            kind, s, e = min(found, key=lambda k: (k[1], -k[2]))
            if self._event is None or self._event[0] == kind and s < self._event[2]:
                self._event = (kind, min(s, self._event[1]) if self._event else s, e)
            elif self._event[0] == "dissolve" and kind != "dissolve" and s < self._event[2]:
                self._event = (kind, s, e)  # a fade's first frames also fit a dissolve into a darker frame
            else:
                self._report()
                self._event = (kind, s, e)
        if self._event and (not found or self.frames - 1 - self._event[2] >= HOLD):
            self._report()

    def _report(self) -> None:
        if self._event is None:
            return
        kind, s, e = self._event
        self._event = None
        s, e = self._refine(kind, s, e)
        if self._found and s < self._found[-1].end:
            if kind == "dissolve" or self._found[-1].kind != "dissolve":
                return  # overlaps the one reported before it
            self._found.pop()  # a fade's first frames fit a dissolve into a darker frame: the fade it is
        if self._index(s - 1) < 0:
            return
        self._found.append(Transition(s, e, kind, self._weights(kind, s, e)))

    def _refine(self, kind: str, s: int, e: int) -> tuple[int, int]:
        """Ends of the blend from a line through the weights of its middle (0.15..0.85): where it leaves 0 and
        reaches 1 (the shots' own frames drift a little, which trimming at ``EDGE`` takes for blending)."""
        lo = max(s, self.frames - len(self._thumbs) + 1)
        w = np.array(self._weights(kind, lo, e, clip=False))
        frames = np.arange(lo, lo + len(w))
        middle = (w > 0.15) & (w < 0.85)
        if middle.sum() < 2:
            return s, e
        slope, icpt = np.polyfit(frames[middle], w[middle], 1)
        if slope <= 0:
            return s, e
        start, end = round(-icpt / slope) + 1, round((1 - icpt) / slope)
        # only ever narrowed (the detector's ends are the last frames that fit)
        start, end = max(s, start), min(e, end)
        return (start, end) if end - start >= MIN_LENGTH else (s, e)

    def _weights(self, kind: str, s: int, e: int, clip: bool = True) -> tuple[float, ...]:
        """The incoming share of frames ``s`` .. ``e - 1``: the fit against the frames on either side (black
        for a fade's), clipped to 0..1 and made non-decreasing."""
        thumbs = [self._thumbs[self._index(f)] for f in range(s - 1, min(e, self.frames - 1) + 1)]
        a, frames = thumbs[0], np.stack(thumbs[1:e - s + 1])
        b = thumbs[-1] if len(thumbs) == e - s + 2 else frames[-1]
        if kind == "fade_out":
            b = np.zeros_like(a)
        if kind == "fade_in":
            a = np.zeros_like(b)
        w = (frames - a) @ (b - a) / max(float((b - a) @ (b - a)), 1e-9)
        if not clip:
            return tuple(float(v) for v in w)
        return tuple(float(v) for v in np.maximum.accumulate(np.clip(w, 0.0, 1.0)))

    @property
    def found(self) -> list[Transition]:
        """The transitions reported so far (the last may still be replaced; :meth:`finish` gives them all)."""
        return list(self._found)

    def finish(self) -> list[Transition]:
        """The transitions found, in order (reports the one still followed)."""
        self._report()
        for frame, f in self._followed.items():
            if not f.done:
                f.done = True
                self._ramp(frame, f)
        for item in [p for p in self._pending if p[1] < self.frames]:
            self._pending.remove(item)
            self._check_moving(*item)
        for item in list(self._both):
            self._both.remove(item)
            self._check_moving(*item, end_moves=True)
        return list(self._found)


def detect_transitions(frames: Iterable, cuts: Sequence[int] = (), max_length: int = MAX_LENGTH) -> list[Transition]:
    """Dissolves and fades in ``frames`` (``[N, H, W, 3]`` tensor/array or any iterable of ``[H, W, 3]`` frames,
    uint8 or float 0..1). ``cuts``: hard cuts already known (e.g. ``detect_cuts``'s): a transition never reaches
    across one to its ends (one inside it is a detector marking it, see :func:`cuts_in`)."""
    detector = TransitionDetector(cuts, max_length)
    for frame in frames:
        detector.feed(frame)
    return detector.finish()
