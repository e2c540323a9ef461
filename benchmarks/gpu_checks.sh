#!/usr/bin/env bash
# The GPU checks of the performance issue, in one run on a lent GPU machine (logs to $OUT, else ./gpu-logs):
# the CUDA-only tests (tests/test_cuda.py: tiny-fixture parity on CUDA, fused attention kernels at full size,
# traced vs measured memory), then benchmarks/gpu_suite.py (every figure, one process, most important first), then
# benchmarks/comfy_model_management.py (the model under current ComfyUI's model management, dynamic VRAM off and
# on: load, sample, unload, freed; issue 30) where a ComfyUI tree is carried as .fixtures/comfyui and the machine
# has ComfyUI's requirements (it says which import is missing otherwise).
# Wheels in .whl (diffusers) and the tiny weights in .fixtures are used when present (carried there). Prepare them
# here first (both folders are git-ignored locally):
#   echo /.whl/ >> .git/info/exclude; echo /.fixtures/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 importlib_metadata
#   mkdir -p .fixtures/shared/m3ddm_reference/tiny_unet
#   cp ../shared/m3ddm_reference/tiny_unet/weights.safetensors .fixtures/shared/m3ddm_reference/tiny_unet/
#   rsync -a --exclude tests --exclude tests-unit --exclude temp --exclude blueprints --exclude comfy_api_nodes \
#     .comfyui/0.33.0/ .fixtures/comfyui/        # ~25 MB; with comfy-aimdo's wheel in .whl
# then: device run `bash benchmarks/gpu_checks.sh` with carry [".whl", ".fixtures"], timeout_s 580.
# SUITE_BUDGET (seconds, default 430) bounds the suite; sections that would end past it are left out.
set -uo pipefail
OUT=${OUT:-gpu-logs}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
[ -d .fixtures/shared ] && export M3DDM_SHARED="$PWD/.fixtures/shared"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)" | tee -a "$OUT/gpu.txt"
echo "== tests/test_cuda.py"
timeout 100 python3 -m pytest -q -ra tests/test_cuda.py 2>&1 | tee "$OUT/cuda_tests.txt"
budget=${SUITE_BUDGET:-430}
echo "== benchmarks/gpu_suite.py (budget ${budget} s)"
timeout $((budget + 30)) python3 benchmarks/gpu_suite.py --out "$OUT" --budget "$budget" 2>&1 | tee "$OUT/gpu_suite.txt"
echo "== benchmarks/comfy_model_management.py (ComfyUI's model management, dynamic VRAM off and on)"
if [ -f .fixtures/comfyui/main.py ]; then
  timeout 240 python3 benchmarks/comfy_model_management.py --comfy .fixtures/comfyui --out "$OUT" 2>&1 \
    | tee "$OUT/comfy_model_management.txt"
else
  echo "left out: no ComfyUI carried as .fixtures/comfyui (see the preparation above)" | tee "$OUT/comfy_model_management.txt"
fi
