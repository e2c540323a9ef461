#!/usr/bin/env bash
# The test command (README "Run the tests"; .ci/run calls exactly this): installs what the tests need -- the
# virtualenv with a real ComfyUI 0.3.75, and Debian's Chromium for the frontend tests -- then runs the whole suite,
# slow real-server and browser tests included. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: Chromium is not installed (sudo apt-get install chromium); the frontend tests will be skipped" >&2
  fi
fi
exec "${M3DDM_VENV:-.venv}/bin/python" -m pytest -ra --durations=25 "$@"
