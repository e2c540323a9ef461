#!/usr/bin/env bash
# The main job (README "Run the demo"): installs everything into .venv and .comfyui/ (ComfyUI 0.33.0), then
# outpaints the shipped clip with workflow (d) (--workflow image: (b)) through a real headless ComfyUI server and
# writes output/*.mp4. Arguments go to run_demo.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec "${M3DDM_VENV:-.venv}/bin/python" scripts/run_demo.py "$@"
