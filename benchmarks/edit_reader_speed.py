"""Shot detection on full-HD frames: one shrink shared by the three finders against each shrinking it itself.

:class:`m3ddm_core.pipeline.edits.EditReader` feeds every frame to the cut detector, the transition detector and
the set-up grouper. Each works on the frame shrunk to 256 px; at 1920x1080 the shrink is most of the work. The
baseline, measured in the same run, feeds the full frame to each finder as before (three shrinks a frame); both give
the same cuts, transitions and groups (checked).

Usage: ``python benchmarks/edit_reader_speed.py [--frames 80] [--size 1920x1080]``.
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

from constructed_edits import interview_edits, transition_edits  # noqa: E402
from m3ddm_core.pipeline.edits import EditReader  # noqa: E402
from m3ddm_core.pipeline.setups import ShotGrouper, _thumb  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--size", default="1920x1080")
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


if __name__ == "__main__":
    main()
