"""Load time and peak RAM of the full-size M3DDM UNet from an official-layout fp16 ``.bin``.

Writes a random full-size fp16 checkpoint (config.json + diffusion_pytorch_model.bin, 1,516 tensors, ~2.6 GB)
to a temporary folder, then loads it in a fresh process and prints load time and peak RSS against the file
size. Usage: ``python benchmarks/load_full_size.py [--dtype fp16|bf16|fp32] [--keep DIR]``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from m3ddm_core import FULL_SIZE_CONFIG, build_unet  # noqa: E402


def write_checkpoint(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(FULL_SIZE_CONFIG, indent=1))
    gen = torch.Generator().manual_seed(0)
    sd = {}
    for key, meta in build_unet(FULL_SIZE_CONFIG, device="meta").state_dict().items():
        if not meta.is_floating_point():
            sd[key] = torch.zeros(meta.shape, dtype=meta.dtype)
        elif key.endswith("running_var"):
            sd[key] = torch.ones(meta.shape, dtype=torch.float16)
        else:
            sd[key] = (torch.randn(meta.shape, generator=gen) * 0.02).half()
    path = folder / "diffusion_pytorch_model.bin"
    torch.save(sd, path)
    return path


# VmHWM (per address space) resets at exec; ru_maxrss would carry over the parent's peak.
CHILD = r"""
import sys, time, json, torch
def hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
sys.path.insert(0, sys.argv[1])
from m3ddm_core import load_unet
dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[sys.argv[3]]
rss0 = hwm_kb()
t0 = time.perf_counter()
model = load_unet(sys.argv[2], dtype=dtype)
t_load = time.perf_counter() - t0
rss_load = hwm_kb()
# Touch every weight (as a forward pass would) so that lazily mapped pages are counted too.
total = sum(float(p.float().abs().sum()) for p in model.state_dict().values() if p.is_floating_point())
rss_touch = hwm_kb()
print(json.dumps({"load_s": t_load, "rss_base_kb": rss0, "rss_load_kb": rss_load, "rss_touched_kb": rss_touch,
                  "params": sum(p.numel() for p in model.parameters())}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="fp16", choices=["fp16", "bf16", "fp32"])
    ap.add_argument("--keep", help="write the checkpoint here and keep it")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp) / "m3ddm-random-fp16"
        t0 = time.perf_counter()
        path = write_checkpoint(folder)
        size = path.stat().st_size
        print(f"wrote {path.name}: {size / 2**30:.2f} GiB in {time.perf_counter() - t0:.1f} s")
        out = subprocess.run([sys.executable, "-c", CHILD, str(REPO), str(folder), args.dtype],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
    base = r["rss_base_kb"] * 1024
    for label, key in (("after load", "rss_load_kb"), ("after touching all weights", "rss_touched_kb")):
        peak = r[key] * 1024
        print(f"peak RSS {label}: {peak / 2**30:.2f} GiB total, {(peak - base) / 2**30:.2f} GiB above the "
              f"interpreter+torch baseline = {(peak - base) / size:.2f}x the file size")
    print(f"load_s={r['load_s']:.2f} params={r['params']} dtype={args.dtype} "
          f"peak_ratio={(r['rss_touched_kb'] * 1024 - base) / size:.2f}")


if __name__ == "__main__":
    main()
