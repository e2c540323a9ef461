"""Native-resolution composite per frame: the plain full-frame composite vs the pipeline's (border bands only,
layout computed once per video).

Same frames, same plan, one frame at a time as the streamed path composites, measured in one run; the outputs
are checked to agree. Usage: ``python benchmarks/composite_speed.py [--frames 6] [--size 1080x1920]
[--ratio 9:16]``. The last line is ``out=WxH full_frame_ms=<per frame> banded_ms=<per frame> speedup=<ratio>
max_diff=<d>``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from helpers import full_frame_composite  # noqa: E402

from m3ddm_core import plan_canvas  # noqa: E402
from m3ddm_core.pipeline.composite import CompositeLayout, composite  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--size", default="1080x1920", help="source frame HxW")
    ap.add_argument("--ratio", default="9:16")
    ap.add_argument("--feather", type=int, default=8)
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    plan = plan_canvas((h, w), ratio=args.ratio)
    g = torch.Generator().manual_seed(0)
    frames = [torch.rand(1, h, w, 3, generator=g) for _ in range(args.frames)]
    generated = [torch.rand(1, *plan.canvas_hw, 3, generator=g) for _ in range(args.frames)]
    buffer = torch.empty(1, *plan.output_hw, 3)

    t0 = time.perf_counter()
    plain = [full_frame_composite(f, c, plan, args.feather) for f, c in zip(frames, generated)]
    t_plain = (time.perf_counter() - t0) / args.frames
    t0 = time.perf_counter()
    layout = CompositeLayout(plan, args.feather)  # once per video, counted here anyway
    diff = 0.0
    for f, c, ref in zip(frames, generated, plain):
        diff = max(diff, (composite(f, c, plan, args.feather, out=buffer, layout=layout) - ref).abs().max().item())
    t_banded = (time.perf_counter() - t0) / args.frames
    oh, ow = plan.output_hw
    print(f"{args.frames} frames {w}x{h} -> {ow}x{oh}, {torch.get_num_threads()} threads")
    print(f"out={ow}x{oh} full_frame_ms={t_plain * 1000:.1f} banded_ms={t_banded * 1000:.1f} "
          f"speedup={t_plain / t_banded:.2f} max_diff={diff:.1e}")


if __name__ == "__main__":
    main()
