#!/usr/bin/env bash
# Creates/updates the project virtualenv (default .venv) with torch, a real ComfyUI 0.3.75 (in .comfyui) and the
# plugin's requirements. Idempotent. torch is pinned so that no requirement can pull another build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${M3DDM_VENV:-.venv}
COMFY=${M3DDM_COMFYUI_DIR:-.comfyui}
# Newest comfyui-frontend-package release the browser tests (tests/test_frontend.py) also run against, besides the
# one ComfyUI 0.3.75 pins and installs into the venv (1.32.9). Its web root is unpacked to .frontends/VERSION
# (not installed into the venv) and served with ComfyUI's --front-end-root. tests/test_frontend.py reads this line.
NEWEST_FRONTEND=1.58.1
source scripts/torch_pins.sh
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install -q "${TORCH_PINS[@]}"
bash scripts/install_comfyui.sh "$VENV" "$COMFY"
pip install -q -r requirements.txt -r requirements-dev.txt "${TORCH_PINS[@]}"
bash scripts/install_frontend.sh "$NEWEST_FRONTEND" ".frontends/$NEWEST_FRONTEND" "$VENV/bin/python"
