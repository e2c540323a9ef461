"""Gradual transitions and returning set-ups measured on constructed edits with known truth (issue 33).

Transitions: ``detect_transitions`` on ``transition_benchmark_edits`` (the cut benchmark's edits plus more
dissolves, fades through black, lighting ramps and interviews). A found transition matches a true one when their
ranges overlap and their kinds match; P / R / F1 per kind of edit, and the mean absolute error of the weights over
the true blended frames of matched transitions. Where ``detect_cuts`` marks each true transition is reported too.
Grouping: ``group_shots`` on the interview edits with their true cuts; pairwise precision and recall of "same
group". Times per 1,000 frames on the machine it runs on.

``--moving``: instead, dissolves into and out of steady pans at 3-20% of the width a frame, and between two pans the
opposite way (8, 12 and 20 frames, five pairs of palettes): per kind and speed, how many are found with both ends
within 2 frames, found further off, missed, and the false ones.

Usage: ``python benchmarks/transitions.py [--seeds 0 1 2] [--cuts] [--moving]`` (``--cuts``: also run
``detect_cuts``).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from itertools import combinations
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from constructed_edits import moving_dissolve_edits, transition_benchmark_edits  # noqa: E402
from m3ddm_core.pipeline.setups import group_shots  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cuts import prf  # noqa: E402  (precision, recall, F1: one definition for both benchmarks)
from m3ddm_core.pipeline.shots import detect_cuts  # noqa: E402
from m3ddm_core.pipeline.transitions import detect_transitions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cuts", action="store_true", help="also report where detect_cuts marks each transition")
    parser.add_argument("--moving", action="store_true",
                        help="dissolves into, out of and between pans of 3-20%% a frame")
    args = parser.parse_args()
    if args.moving:
        return moving()
    edits = transition_benchmark_edits(args.seeds)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    errors: list[float] = []
    marks: list[str] = []
    spent, frames = 0.0, 0
    for e in edits:
        start = time.perf_counter()
        found = detect_transitions(e.frames)
        spent += time.perf_counter() - start
        frames += len(e.frames)
        left = list(found)
        for g in e.gradual:
            hit = next((t for t in left if t.kind == g.kind and t.start < g.end and g.start < t.end), None)
            if hit is None:
                counts[e.category][2] += 1
                continue
            left.remove(hit)
            counts[e.category][0] += 1
            errors += [abs(hit.weight(f) - g.weights[f - g.start]) for f in range(g.start, g.end)]
        counts[e.category][1] += len(left)
        if args.cuts and e.gradual:
            cuts = detect_cuts(e.frames)
            marks.append(f"{e.name}: truth {[(g.start, g.end, g.kind) for g in e.gradual]}, detect_cuts {cuts}")
    print(f"{len(edits)} constructed edits, {frames} frames of 160x90; cell: P / R / F1 (false transitions)\n")
    print("| | detect_transitions |\n|---|---|")
    total = [0, 0, 0]
    for cat, (tp, fp, fn) in counts.items():
        total = [total[0] + tp, total[1] + fp, total[2] + fn]
        p, r, f = prf(tp, fp, fn)
        print(f"| {cat} | " + (f"{fp} false" if tp + fn == 0 else f"{p:.2f} / {r:.2f} / {f:.2f} ({fp})") + " |")
    p, r, f = prf(*total)
    print(f"| overall | {p:.2f} / {r:.2f} / {f:.2f} ({total[1]}) |")
    print(f"| weights: mean abs error | {np.mean(errors):.3f} |")
    print(f"| s per 1,000 frames | {spent / frames * 1000:.2f} |")
    pairs = [0, 0, 0]  # same group in both, found only, true only
    spent, frames = 0.0, 0
    for e in edits:
        if not e.groups:
            continue
        start = time.perf_counter()
        groups = group_shots(e.frames, e.cuts)
        spent += time.perf_counter() - start
        frames += len(e.frames)
        for i, j in combinations(range(len(e.groups)), 2):
            found, true = groups[i] == groups[j], e.groups[i] == e.groups[j]
            pairs[0] += found and true
            pairs[1] += found and not true
            pairs[2] += true and not found
    p, r, _ = prf(*pairs)
    print(f"\ngrouping (interviews, {frames} frames): pairwise precision {p:.2f}, recall {r:.2f}; "
          f"{spent / max(frames, 1) * 1000:.2f} s per 1,000 frames")
    for line in marks:
        print(line)


def moving() -> None:
    rows: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # within 2 frames, further off, missed, false
    errors: list[float] = []
    spent, frames = 0.0, 0
    edits = moving_dissolve_edits()
    for e in edits:
        start = time.perf_counter()
        found = detect_transitions(e.frames)
        spent += time.perf_counter() - start
        frames += len(e.frames)
        (g,) = e.gradual
        hit = next((t for t in found if t.kind == g.kind and t.start < g.end and g.start < t.end), None)
        row = rows[e.category]
        row[3] += len(found) - (hit is not None)
        if hit is None:
            row[2] += 1
            continue
        row[0 if max(abs(hit.start - g.start), abs(hit.end - g.end)) <= 2 else 1] += 1
        errors += [abs(hit.weight(f) - g.weights[f - g.start]) for f in range(g.start, g.end)]
    print(f"{len(edits)} dissolves into, out of or between pans, {frames} frames of 160x90\n")
    print("| | ends within 2 frames | further off | missed | false |\n|---|---|---|---|---|")
    for cat in sorted(rows, key=lambda c: (["into", "out ", "betw"].index(c[:4]), float(c.split()[-1]))):
        print(f"| {cat} | " + " | ".join(map(str, rows[cat])) + " |")
    print(f"\nweights of the found: mean abs error {np.mean(errors):.3f}; "
          f"{spent / frames * 1000:.2f} s per 1,000 frames")


if __name__ == "__main__":
    main()
