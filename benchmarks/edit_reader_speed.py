"""Shot detection's speed: one shrink shared by the three finders on full-HD frames, and grouping set-ups in a
fast-cut edit.

:class:`m3ddm_core.pipeline.edits.EditReader` feeds every frame to the cut detector, the transition detector and
the set-up grouper. Each works on the frame shrunk to 256 px; at 1920x1080 the shrink is most of the work. The
baseline, measured in the same run, feeds the full frame to each finder as before (three shrinks a frame); both give
the same cuts, transitions and groups (checked).

Grouping: a fast-cut edit (150 shots of 10 frames, 160x90, most of them set-ups of their own) compares every new
shot with every set-up kept so far. :func:`m3ddm_core.pipeline.setups.similarities` does all shifts and all kept
thumbnails in one array expression; the baseline, in the same run, is the same normalised cross-correlation shift
by shift and pair by pair (as before); both give the same groups (checked).

Usage: ``python benchmarks/edit_reader_speed.py [--frames 80] [--size 1920x1080] [--shots 150]``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
from constructed_edits import BLUE, GREEN, GREY, WARM, Shot, assemble, interview_edits, still, transition_edits  # noqa: E402,E501
from m3ddm_core.pipeline.edits import EditReader  # noqa: E402
from m3ddm_core.pipeline import setups  # noqa: E402
from m3ddm_core.pipeline.setups import MIN_OVERLAP, SHIFT, ShotGrouper, _thumb, group_shots  # noqa: E402
from m3ddm_core.pipeline.shots import CutDetector  # noqa: E402
from m3ddm_core.pipeline.transitions import TransitionDetector, shot_cuts  # noqa: E402


def shared(frames: list) -> tuple:
    reader = EditReader(transitions=True, groups=True)
    for f in frames:
        reader.feed(f)
    return reader.cuts(), reader.transitions(), reader.groups()


def separate(frames: list) -> tuple:
    """Each finder shrinks the full frame itself (the grouper given the final cuts, as EditReader ends up)."""
    cuts, fades = CutDetector(), TransitionDetector()
    thumbs = []
    for f in frames:
        cuts.feed(f)
        fades.feed(f)
        thumbs.append(_thumb(f))
    found = shot_cuts(cuts.cuts(), fades.finish())
    grouper = ShotGrouper(found)
    for t in thumbs:
        grouper.feed_thumb(t)
    return found, fades.finish(), grouper.finish()


def pairwise(a: np.ndarray, others: np.ndarray) -> np.ndarray:
    """The baseline of :func:`.setups.similarities`: each other thumbnail, each shift, one correlation at a time."""
    h, w = a.shape
    out = []
    for b in others:
        best = -1.0
        for dy in range(-SHIFT, SHIFT + 1):
            for dx in range(-SHIFT, SHIFT + 1):
                if (h - abs(dy)) * (w - abs(dx)) < MIN_OVERLAP * h * w:
                    continue
                x = a[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)].astype(np.float64)
                y = b[max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)].astype(np.float64)
                x, y = x - x.mean(), y - y.mean()
                norm = float(np.sqrt((x * x).sum() * (y * y).sum()))
                best = max(best, float((x * y).sum() / norm) if norm > 1e-6 else 0.0)
        out.append(best)
    return np.array(out)


def grouping(shots: int) -> None:
    colours = [GREY, WARM, BLUE, GREEN]
    edit = assemble("fast cuts", "", [Shot(200 + k, colours[k % 4], still(), 10) for k in range(shots)])
    times, groups = {}, {}
    fast = setups.similarities
    for name, fn in (("pair by pair, shift by shift (before)", pairwise), ("all at once", fast)):
        setups.similarities = fn
        try:
            start = time.perf_counter()
            groups[name] = group_shots(edit.frames, edit.cuts)
            times[name] = time.perf_counter() - start
        finally:
            setups.similarities = fast
    before, after = times.values()
    print(f"{len(edit.frames)} frames, {shots} shots ({len(set(groups[name]))} set-ups): grouping")
    for name, t in times.items():
        print(f"  {name}: {t:.2f} s")
    print(f"  ratio {before / after:.1f}x; same groups: {len(set(map(tuple, groups.values()))) == 1}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--shots", type=int, default=150)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    source = (transition_edits(0)[0].frames + interview_edits(0)[0].frames)[:args.frames]
    frames = [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in source]
    times = {}
    results = {}
    for name, run in (("each finder shrinks (before)", separate), ("one shared shrink", shared)):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            results[name] = run(frames)
            best = min(best, time.perf_counter() - start)
        times[name] = best / len(frames) * 1000
    before, after = times.values()
    same = len({repr(r) for r in results.values()}) == 1
    print(f"{len(frames)} frames of {args.size}: cuts, dissolves and fades, set-ups")
    for name, ms in times.items():
        print(f"  {name}: {ms:.1f} ms a frame")
    print(f"  ratio {before / after:.2f}x; same cuts, transitions and groups: {same}")
    grouping(args.shots)


if __name__ == "__main__":
    main()
