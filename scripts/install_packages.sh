#!/usr/bin/env bash
# Installs packages into a virtualenv: scripts/install_packages.sh VENV ARGS...   (ARGS as for pip install)
# With uv where it can be had from the package registry (installed into VENV first; scripts/uv_install.py hands it
# pip's configured sources, so both install the same releases, uv several times faster), else with pip.
# M3DDM_USE_PIP=1 uses pip.
set -euo pipefail
venv=${1:?virtualenv dir}; shift
py="$venv/bin/python"
if [ "${M3DDM_USE_PIP:-0}" != 1 ]; then
  [ -x "$venv/bin/uv" ] || "$py" -m pip install -q uv >/dev/null 2>&1 || echo "note: uv is not available; installing with pip" >&2
  if [ -x "$venv/bin/uv" ]; then
    exec "$py" "$(dirname "$0")/uv_install.py" "$@"
  fi
fi
exec "$py" -m pip install -q "$@"
