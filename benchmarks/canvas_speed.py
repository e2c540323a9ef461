"""Canvas building (resize + OpenCV TELEA prefill) per frame: one thread vs the thread pool the pipeline uses.

Same frames, same plan, measured in one run; the outputs are checked to be identical. Usage:
``python benchmarks/canvas_speed.py [--frames 64] [--size 120x208] [--ratio 9:16] [--workers N]``.
The last line is ``serial_ms=<per frame> threaded_ms=<per frame> workers=<N> speedup=<ratio>``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from m3ddm_core import plan_canvas  # noqa: E402
from m3ddm_core.pipeline.encode import CANVAS_WORKERS, build_canvases  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--size", default="120x208", help="source frame HxW")
    ap.add_argument("--ratio", default="9:16")
    ap.add_argument("--workers", type=int, default=CANVAS_WORKERS)
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(args.frames)]
    plan = plan_canvas((h, w), ratio=args.ratio)
    build_canvases(frames[:2], plan, 1)  # warm-up
    t0 = time.perf_counter()
    serial = build_canvases(frames, plan, 1)
    t_serial = (time.perf_counter() - t0) / len(frames)
    t0 = time.perf_counter()
    threaded = build_canvases(frames, plan, args.workers)
    t_threaded = (time.perf_counter() - t0) / len(frames)
    same = all(np.array_equal(a, b) for s, t in zip(serial, threaded) for a, b in zip(s, t))
    print(f"{len(frames)} frames {h}x{w} -> canvas {plan.canvas_hw[0]}x{plan.canvas_hw[1]}: identical outputs: {same}")
    print(f"serial_ms={t_serial * 1e3:.1f} threaded_ms={t_threaded * 1e3:.1f} workers={args.workers} "
          f"speedup={t_serial / t_threaded:.2f}")


if __name__ == "__main__":
    main()
