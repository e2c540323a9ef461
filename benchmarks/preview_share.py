"""What M3DDM Keyframe Preview costs against the whole render, at the automatic strides (issue 32).

Plans a one-shot video of each length (no sampling: the plan alone decides which passes the preview samples) and
prints the passes and frames the preview samples, and its share of the full render's passes (every pass costs the
same: one 16-frame clip). Usage: ``python benchmarks/preview_share.py [--frames 33 120 450 1800]``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from m3ddm_core import plan_video  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[33, 120, 450, 1800])
    ap.add_argument("--strides", default="auto")
    args = ap.parse_args()
    print("| frames | preview passes | full render passes | preview share | frames shown |")
    print("|---|---|---|---|---|")
    for n in args.frames:
        plan = plan_video(n, [], args.strides, "fixed", 0)
        preview = plan.preview_passes()
        print(f"| {n} | {len(preview)} | {len(plan)} | {len(preview) / len(plan):.0%} | {len(plan.key_frames())} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
