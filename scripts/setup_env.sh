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
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install -q "${TORCH_PINS[@]}"
bash scripts/install_comfyui.sh 0.33.0 "$VENV" "$COMFY"
bash scripts/install_comfyui.sh 0.3.75 "$VENV" "$FLOOR"
pip install -q -r requirements.txt -r requirements-dev.txt "${TORCH_PINS[@]}"
bash scripts/install_frontend.sh "$NEWEST_FRONTEND" ".frontends/$NEWEST_FRONTEND" "$VENV/bin/python"
bash scripts/install_frontend.sh "$FLOOR_FRONTEND" ".frontends/$FLOOR_FRONTEND" "$VENV/bin/python"
