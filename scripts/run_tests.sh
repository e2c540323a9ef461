#!/usr/bin/env bash
# The test command (README "Run the tests"; .ci/run calls exactly this): installs what the tests need, then runs
# the whole suite, slow real-server tests included. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec "${M3DDM_VENV:-.venv}/bin/python" -m pytest -ra "$@"
