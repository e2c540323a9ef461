#!/usr/bin/env bash
# Creates/updates the project virtualenv (default .venv) with torch, two real ComfyUI releases and the plugin's
# requirements. Idempotent. torch is pinned so that no requirement can pull another build.
#   .comfyui/0.33.0  the current release, the main target: its requirements (and its frontend, 1.48.7) are the venv's;
#   .comfyui/0.3.75  the floor (pyproject's requires-comfyui), run from the same venv with its own frontend (1.32.9),
#                    unpacked to .frontends/1.32.9 and served with --front-end-root.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${M3DDM_VENV:-.venv}
COMFY=${M3DDM_COMFYUI_DIR:-.comfyui/0.33.0}
FLOOR=${M3DDM_FLOOR_COMFYUI_DIR:-.comfyui/0.3.75}
# The frontends the browser tests (tests/test_frontend.py, tests/test_floor.py) read these lines:
# the newest comfyui-frontend-package release, also run in front of the current ComfyUI, and the one the floor pins.
NEWEST_FRONTEND=1.58.1
FLOOR_FRONTEND=1.32.9
source scripts/torch_pins.sh
# A new venv takes about 8 GB (torch 2.14.1 is a CUDA build); pip's own "No space left on device" comes late and
# names no cause, so say it first.
if [ ! -x "$VENV/bin/python" ]; then
  free_kb=$(df -Pk . | awk 'NR==2 {print $4}')
  if [ "${free_kb:-0}" -lt 10000000 ]; then
    echo "setup_env.sh: only $((free_kb / 1024 / 1024)) GB free on $(df -P . | awk 'NR==2 {print $6}');" \
      "a new venv with torch needs about 8 GB, ComfyUI and the test files about 2 GB more: free some space first" >&2
    df -h . >&2
  fi
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
install() { bash scripts/install_packages.sh "$VENV" "$@"; }  # uv where it can be had, else pip
install "${TORCH_PINS[@]}"
bash scripts/install_comfyui.sh 0.33.0 "$VENV" "$COMFY"
bash scripts/install_comfyui.sh 0.3.75 "$VENV" "$FLOOR"
install -r requirements.txt -r requirements-dev.txt "${TORCH_PINS[@]}"
bash scripts/install_frontend.sh "$NEWEST_FRONTEND" ".frontends/$NEWEST_FRONTEND" "$VENV/bin/python"
bash scripts/install_frontend.sh "$FLOOR_FRONTEND" ".frontends/$FLOOR_FRONTEND" "$VENV/bin/python"
