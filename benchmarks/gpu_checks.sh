#!/usr/bin/env bash
# The GPU checks of the performance issue, in one run on a lent GPU machine (logs to $OUT, else ./gpu-logs):
# CUDA parity of the tiny fixture, full-size fp16/bf16 time per clip and peak VRAM (optimized vs reference),
# a 450-frame video, the low-VRAM mode, traced vs measured step memory and the conv-route/bf16 candidates.
# Wheels in .whl (diffusers) and the tiny weights in .fixtures are used when present (carried there). Prepare them here first (both folders are git-ignored locally):
#   echo /.whl/ >> .git/info/exclude; echo /.fixtures/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 importlib_metadata
#   mkdir -p .fixtures && cp ../shared/m3ddm_reference/tiny_unet/weights.safetensors .fixtures/
# then: device run `bash benchmarks/gpu_checks.sh` with carry [".whl", ".fixtures"], timeout_s 590.
set -uo pipefail
OUT=${OUT:-gpu-logs}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)" | tee -a "$OUT/gpu.txt"
run() { local name=$1 limit=$2; shift 2; echo "== $name"; timeout "$limit" python3 "$@" 2>&1 | tee "$OUT/$name.txt"; }
if [ -f .fixtures/weights.safetensors ]; then
  run cuda_parity 120 -c "
import json, torch
from safetensors.torch import load_file
from m3ddm_core import build_unet
from m3ddm_core.reference import official_unet_forward
cfg = json.load(open('tests/data/tiny_unet_config.json')); cases = load_file('tests/data/tiny_unet_cases.safetensors')
meta = json.load(open('tests/data/tiny_unet_cases.json'))
for dtype in (torch.float32, torch.float16, torch.bfloat16):
    m = build_unet(cfg, device='cuda', dtype=dtype); m.load_state_dict(load_file('.fixtures/weights.safetensors'))
    for c in meta['cases']:
        out = official_unet_forward(m, cases[c['input']].cuda().to(dtype), c['timestep'], c['fps'], cases['global_latents'].cuda().to(dtype), c['branches'])
        d = (out.float().cpu() - cases[c['output']]).abs()
        print(f'{dtype} branches={c[\"branches\"]} max|d|={d.max():.2e} mean|d|={d.mean():.2e}')
"
fi
# Most important first: one device call is limited to 10 minutes, and what ran is kept in $OUT.
run memory_fp16 60 benchmarks/memory_budget.py --config full --dtype fp16 --measure
run full_fp16_50steps 150 benchmarks/clip_speed.py --config full --dtype fp16 --steps 50 --skip-reference
run video_450_frames 240 benchmarks/video_scaling.py --config full --frames 450 --steps 50
run full_fp16_vs_reference 150 benchmarks/clip_speed.py --config full --dtype fp16 --steps 5
run full_fp16_lowvram 60 benchmarks/clip_speed.py --config full --dtype fp16 --steps 10 --skip-reference --low-vram
run full_bf16_50steps 90 benchmarks/clip_speed.py --config full --dtype bf16 --steps 50 --skip-reference
run candidates_full 90 benchmarks/candidates.py --config full --repeats 3
