"""A quality check that needs no ground truth: where an outpainted video is likely to look wrong, per shot and per
16-frame window, measured on the output frames over the generated band next to each seam.

Three proxies -- they point at what to look at, they do not judge the picture:

- **seam visibility**: the mean luma step across the seam line over the mean step between neighbouring pixel lines
  on either side of it (about 1 where the seam is as smooth as the picture around it; a border that does not
  continue the picture, e.g. shifted by 2 px, makes a step several times larger);
- **border flicker**: the frame-to-frame change of the generated band over the same change of the adjacent band of
  the original (about 1 where the border moves as the picture it continues does);
- **colour drift**: how far the mean colour difference (CIE Lab) between the generated band and the adjacent
  original band, averaged over the last 8 frames, has moved from its average over the first 8 frames of the shot,
  in ΔE (a slow colour cast grows it; a border that simply has other colours than the original does not, and
  motion, which moves the two bands' colours back and forth, mostly averages out).

Frames stream through one at a time (a long 1080p video in flat memory). Windows are the plan's finest passes
(:func:`plan_windows`), so a flagged window is a pass that can be sampled again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import cv2
import numpy as np

from ..pipeline.canvas import CanvasPlan
from ..pipeline.inputs import setup_labels
from ..pipeline.plan import PlannedPass, VideoPlan, plan_video
from ..pipeline.schedule import Strides
from ..pipeline.shots import shot_bounds

BAND = 16  # pixels of the generated and of the original band on each side of a seam (fewer where less exists)
FLOOR = 0.5  # grey levels: the least step or change a ratio divides by (flat content would make any step "visible")
REFERENCE_FRAMES = 8  # frames at the start of a shot whose colour difference is the drift's reference
THRESHOLDS = {"seam": 2.0, "flicker": 2.0, "drift": 6.0}  # flagged above these
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class Seam:
    """One side where generated pixels meet the original: ``side`` left/right/top/bottom, ``line`` the first
    original row/column (left/top) or the first generated one (right/bottom), ``span`` the original's extent along
    the seam, ``gen``/``orig`` the band widths on each side."""

    side: str
    line: int
    span: tuple[int, int]
    gen: int
    orig: int


def seams(plan: CanvasPlan, band: int = BAND) -> list[Seam]:
    """The seams of ``plan``'s output: every side with a generated border."""
    (oh, ow), (y0, x0), (fh, fw) = plan.output_hw, plan.content_out_yx, plan.frame_hw
    out = []
    for side, gen_extent, line, span, orig_extent in (
            ("left", x0, x0, (y0, y0 + fh), fw), ("right", ow - x0 - fw, x0 + fw, (y0, y0 + fh), fw),
            ("top", y0, y0, (x0, x0 + fw), fh), ("bottom", oh - y0 - fh, y0 + fh, (x0, x0 + fw), fh)):
        if gen_extent >= 2 and orig_extent >= 2:
            out.append(Seam(side, line, span, min(band, gen_extent), min(band, orig_extent)))
    return out


def _across(img: np.ndarray, seam: Seam) -> np.ndarray:
    """The pixels along ``seam`` as ``[lines across the seam, positions along it, ...]``, ordered from the deepest
    generated line to the deepest original line; the seam falls between index ``gen - 1`` and ``gen``."""
    a, b = seam.span
    if seam.side == "left":
        return np.swapaxes(img[a:b, seam.line - seam.gen:seam.line + seam.orig], 0, 1)
    if seam.side == "right":
        return np.swapaxes(img[a:b, seam.line - seam.orig:seam.line + seam.gen], 0, 1)[::-1]
    if seam.side == "top":
        return img[seam.line - seam.gen:seam.line + seam.orig, a:b]
    return img[seam.line - seam.orig:seam.line + seam.gen, a:b][::-1]


@dataclass
class _SeamState:
    prev_gen: Optional[np.ndarray] = None
    prev_orig: Optional[np.ndarray] = None
    gaps: list = field(default_factory=list)  # Lab gap of each frame of the current shot


def _chroma_mean(rgb: np.ndarray) -> np.ndarray:
    """Mean ``(a*, b*)`` of CIE Lab: the colour without its lightness (a shadow or a bright object crossing the
    band is not a colour cast)."""
    lab = cv2.cvtColor(np.ascontiguousarray(rgb, np.float32).reshape(1, -1, 3) / 255.0, cv2.COLOR_RGB2LAB)
    return lab.reshape(-1, 3)[:, 1:].mean(0)


def frame_scores(frame: np.ndarray, seam: Seam, state: _SeamState, new_shot: bool) -> tuple[float, float, float]:
    """``(seam, flicker, drift)`` of one output frame ``[OH, OW, 3]`` at one seam; flicker is NaN on a shot's first
    frame (no frame before it in the shot)."""
    band = _across(frame, seam).astype(np.float32)  # [gen + orig, along, 3]
    luma = band @ LUMA
    steps = np.abs(np.diff(luma, axis=0)).mean(1)  # [gen + orig - 1]: step between consecutive lines
    k = seam.gen - 1  # the step across the seam
    around = np.concatenate([steps[:k], steps[k + 1:]])
    seam_score = float(steps[k] / max(float(around.mean()) if around.size else 0.0, FLOOR))
    gen, orig = luma[:seam.gen], luma[seam.gen:]
    if new_shot:
        state.prev_gen = state.prev_orig = None
        state.gaps = []
    flicker = float("nan")
    if state.prev_gen is not None:
        flicker = float(np.abs(gen - state.prev_gen).mean() / max(float(np.abs(orig - state.prev_orig).mean()), FLOOR))
    state.prev_gen, state.prev_orig = gen, orig
    state.gaps.append(_chroma_mean(band[:seam.gen]) - _chroma_mean(band[seam.gen:]))
    # both ends averaged over REFERENCE_FRAMES frames: motion moves the two bands' colours back and forth, a cast
    # only one way
    reference = np.mean(state.gaps[:REFERENCE_FRAMES], axis=0)
    recent = np.mean(state.gaps[-REFERENCE_FRAMES:], axis=0)
    drift = float(np.linalg.norm(recent - reference))
    return seam_score, flicker, drift


def finest_passes(plan: VideoPlan) -> list[PlannedPass]:
    """The passes of each shot's finest level, in plan order: one per window of the report."""
    out = []
    for shot in range(len(plan.shots)):
        passes = plan.shot_passes(shot)
        finest = min(p.clip.stride for p in passes)
        out.extend(p for p in passes if p.clip.stride == finest)
    return out


def plan_windows(plan: VideoPlan) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` (end exclusive, video frames): the frame range of every pass of each shot's finest
    level, in plan order -- the windows a re-render can sample again."""
    return [(min(p.in_video.frames), max(p.in_video.frames) + 1) for p in finest_passes(plan)]


def schedule_windows(num_frames: int, cuts: Sequence[int] = (), strides: Strides = "auto",
                     schedule: str = "fixed") -> list[tuple[int, int]]:
    """:func:`plan_windows` of the run these settings make (the windows of a video outpainted with them)."""
    return plan_windows(plan_video(num_frames, cuts, strides, schedule))


@dataclass
class QualityReport:
    """Per-frame scores (the worst seam of each frame) and the windows and shots they are summarized over."""

    seams: list[str]
    cuts: list[int]
    windows: list[tuple[int, int]]
    seam: np.ndarray  # [N]
    flicker: np.ndarray  # [N], NaN on each shot's first frame
    drift: np.ndarray  # [N]
    thresholds: dict = field(default_factory=lambda: dict(THRESHOLDS))
    groups: Optional[list] = None  # each shot's camera set-up (the first shot of it); None: each shot its own
    transitions: list = field(default_factory=list)  # dissolves and fades: (kind, first, last blended frame)

    @property
    def num_frames(self) -> int:
        return int(self.seam.shape[0])

    def summarize(self, start: int, end: int) -> dict:
        """Scores of frames ``start .. end-1``: the mean seam visibility, the mean flicker ratio, the largest
        drift, and which exceed their threshold."""
        flicker = self.flicker[start:end]
        flicker = flicker[~np.isnan(flicker)]
        scores = {"seam": float(self.seam[start:end].mean()),
                  "flicker": float(flicker.mean()) if flicker.size else 0.0,
                  "drift": float(self.drift[start:end].max())}
        scores["flags"] = [k for k in ("seam", "flicker", "drift") if scores[k] > self.thresholds[k]]
        scores["badness"] = max(scores[k] / self.thresholds[k] for k in ("seam", "flicker", "drift"))
        return scores

    def window_rows(self) -> list[dict]:
        shots = shot_bounds(self.num_frames, self.cuts)
        rows = []
        for k, (start, end) in enumerate(self.windows):
            shot = next(i for i, (a, b) in enumerate(shots) if a <= start < b)
            rows.append({"window": k, "start": start, "end": end, "shot": shot, **self.summarize(start, end)})
        return rows

    def worst(self, n: int) -> list[dict]:
        """The ``n`` windows with the highest score relative to its threshold, flagged ones only."""
        flagged = [r for r in self.window_rows() if r["flags"]]
        return sorted(flagged, key=lambda r: -r["badness"])[:n]

    def to_dict(self) -> dict:
        labels = self.setup_labels()
        shots = [{"shot": k, "start": a, "end": b, "setup": labels[k], **self.summarize(a, b)}
                 for k, (a, b) in enumerate(shot_bounds(self.num_frames, self.cuts))]
        return {"frames": self.num_frames, "seams": self.seams, "cuts": list(self.cuts),
                "transitions": [{"kind": kind, "start": a, "end": b} for kind, a, b in self.transitions],
                "thresholds": dict(self.thresholds), "shots": shots, "windows": self.window_rows(),
                "per_frame": {"seam": _rounded(self.seam), "flicker": _rounded(self.flicker),
                              "drift": _rounded(self.drift)},
                "note": "proxies without ground truth: they point at frames to look at, they do not judge them"}

    def plot(self, width: int = 960, panel: int = 160) -> np.ndarray:
        """The scores drawn (:func:`plot_report`): ``[3 * panel + 30, width, 3]`` uint8."""
        return plot_report(self, width, panel)

    def setup_labels(self) -> list[str]:
        """Each shot's camera set-up as a letter (A B A: shots 1 and 3 share theirs)."""
        return setup_labels(self.groups if self.groups is not None else range(len(self.cuts) + 1)).split()

    def text(self) -> str:
        rows = self.window_rows()
        flagged = [r for r in rows if r["flags"]]
        lines = [f"M3DDM quality check: {self.num_frames} frames, {len(self.cuts) + 1} shot(s), {len(rows)} windows, "
                 f"seams {', '.join(self.seams) or 'none'}; {len(flagged)} window(s) flagged"]
        if self.transitions:
            lines.append("  borders blended with the picture in " + ", ".join(
                f"{kind.replace('_', ' ')} {a}-{b}" for kind, a, b in self.transitions))
        for r in flagged:
            lines.append(f"  window {r['window']} frames {r['start']}-{r['end'] - 1} (shot {r['shot'] + 1}): "
                         + ", ".join(f"{k} {r[k]:.2f}" for k in r["flags"]))
        return "\n".join(lines)


def _rounded(a: np.ndarray) -> list:
    return [None if np.isnan(v) else round(float(v), 3) for v in a]


def check_quality(frames: Iterable[np.ndarray], plan: CanvasPlan, cuts: Sequence[int] = (),
                  windows: Optional[Sequence[tuple[int, int]]] = None, band: int = BAND,
                  groups: Optional[Sequence[int]] = None, transitions: Sequence = ()) -> QualityReport:
    """Score every output frame (``[OH, OW, 3]`` uint8 or float 0..255, streamed) of an outpainted video made
    with ``plan``; ``cuts`` start new shots (no flicker across a cut, drift measured from each shot's start),
    ``groups`` their camera set-ups and ``transitions`` (:class:`.pipeline.transitions.Transition`) its dissolves
    and fades (shown, not scored). ``windows`` default to consecutive 16-frame windows of each shot."""
    cut_set = set(int(c) for c in cuts)
    sides = seams(plan, band)
    states = [_SeamState() for _ in sides]
    seam_s, flicker_s, drift_s = [], [], []
    for i, frame in enumerate(frames):
        frame = np.asarray(frame, np.float32)
        if frame.shape[:2] != tuple(plan.output_hw):
            raise ValueError(f"frame {i} is {frame.shape[1]}x{frame.shape[0]}, the canvas's output is "
                             f"{plan.output_hw[1]}x{plan.output_hw[0]}")
        scores = [frame_scores(frame, s, st, i == 0 or i in cut_set) for s, st in zip(sides, states)]
        seam_s.append(max((s[0] for s in scores), default=0.0))
        flick = [s[1] for s in scores if not np.isnan(s[1])]
        flicker_s.append(max(flick) if flick else float("nan"))
        drift_s.append(max((s[2] for s in scores), default=0.0))
    n = len(seam_s)
    if n == 0:
        raise ValueError("no frames to check")
    if windows is None:  # consecutive 16-frame windows of each shot
        windows = [(w, min(end, w + 16)) for start, end in shot_bounds(n, sorted(cut_set))
                   for w in range(start, end, 16)]
    return QualityReport([s.side for s in sides], sorted(c for c in cut_set if 0 < c < n), list(windows),
                         np.array(seam_s, np.float32), np.array(flicker_s, np.float32), np.array(drift_s, np.float32),
                         groups=None if groups is None else [int(g) for g in groups],
                         transitions=[(t.kind, int(t.start), int(t.end) - 1) for t in transitions if t.start < n])


def plot_report(report: QualityReport, width: int = 960, panel: int = 160) -> np.ndarray:
    """``[3 * panel + 30, width, 3]`` uint8: seam, flicker and drift over the frames, each with its threshold
    (dashed), the windows (grey ticks), the cuts (red lines), each shot's camera set-up (a letter at its start, in
    the top panel), the dissolves and fades (shaded blue, named in the top panel) and flagged windows (shaded
    red)."""
    n = report.num_frames
    img = np.full((3 * panel + 30, width, 3), 255, np.uint8)
    left, right = 60, width - 10
    rows = report.window_rows()

    def xs(i: int) -> int:
        return int(left + (right - left) * i / max(n - 1, 1))

    for k, name in enumerate(("seam", "flicker", "drift")):
        top, bottom = 10 + k * panel, 10 + (k + 1) * panel - 20
        values = getattr(report, name)
        finite = values[~np.isnan(values)]
        vmax = max(float(finite.max()) if finite.size else 0.0, report.thresholds[name] * 1.5)

        def ys(v: float, top=top, bottom=bottom, vmax=vmax) -> int:
            return int(bottom - (bottom - top) * min(v, vmax) / vmax)
        for r in rows:
            if name in r["flags"]:
                cv2.rectangle(img, (xs(r["start"]), top), (xs(r["end"] - 1), bottom), (255, 220, 220), -1)
        for kind, a, b in report.transitions:  # over a flag's shade: there the border is the blend, not a pass's
            cv2.rectangle(img, (xs(a), top), (max(xs(b), xs(a) + 1), bottom), (200, 225, 255), -1)
            if k == 0:
                cv2.putText(img, kind.replace("_", " "), (xs(a) + 2, bottom - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                            (30, 60, 160), 1, cv2.LINE_AA)
        for r in rows:
            cv2.line(img, (xs(r["start"]), bottom), (xs(r["start"]), bottom + 5), (150, 150, 150), 1)
        for c in report.cuts:
            cv2.line(img, (xs(c), top), (xs(c), bottom), (220, 40, 40), 1)
        thr = ys(report.thresholds[name])
        for x in range(left, right, 8):
            cv2.line(img, (x, thr), (min(x + 4, right), thr), (120, 120, 120), 1)
        pts = [(xs(i), ys(float(v))) for i, v in enumerate(values) if not np.isnan(v)]
        if len(pts) > 1:
            cv2.polylines(img, [np.array(pts, np.int32)], False, (30, 90, 200), 1, cv2.LINE_AA)
        cv2.rectangle(img, (left, top), (right, bottom), (0, 0, 0), 1)
        if k == 0 and report.cuts:
            for (start, _), label in zip(shot_bounds(n, report.cuts), report.setup_labels()):
                cv2.putText(img, label, (xs(start) + 3, top + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (160, 30, 30), 1,
                            cv2.LINE_AA)
        cv2.putText(img, name, (4, top + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"{vmax:.1f}", (4, top + 32), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (90, 90, 90), 1, cv2.LINE_AA)
    cv2.putText(img, f"frames 0-{n - 1}; red: cuts (letters: camera set-ups), shaded red: flagged windows, blue: "
                "dissolves and fades, dashed: thresholds",
                (left, 3 * panel + 22), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return img
