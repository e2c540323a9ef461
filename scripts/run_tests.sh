#!/usr/bin/env bash
# The test command (README "Run the tests"; .ci/run calls exactly this): installs what the tests need -- the
# virtualenv with real ComfyUIs (the current 0.33.0, the main target, and the floor 0.3.75), and Debian's Chromium
# for the frontend tests -- then runs the whole suite, slow real-server and browser tests included. Extra arguments
# go to pytest.
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
py="${M3DDM_VENV:-.venv}/bin/python"
if [ $# -gt 0 ] || [ "${M3DDM_TEST_SPLIT:-1}" = 0 ]; then
  exec "$py" -m pytest -ra --durations=25 "$@"
fi
# The whole suite as two pytest processes side by side on the 2 cores: the ComfyUI server, browser and Ray tests
# (mostly waiting on the server, the page and the Ray workers; one torch thread, which those inherit) with two
# recordings (one torch thread by design), and everything else. Each prints its own summary, then the total; the exit status is the worse of the two. M3DDM_TEST_SPLIT=0
# runs one process.
logs=$(mktemp -d)
OMP_NUM_THREADS=1 "$py" -m pytest -ra --durations=15 --basetemp "$logs/ui-tmp" -m "server or browser or ray or one_thread" \
  >"$logs/ui.log" 2>&1 &
ui=$!
set +e
# PASSIVE: torch's two OpenMP threads sleep at a barrier instead of spinning, so when the other half holds a core
# the thread waiting on it does not burn the core that is left (a node test beside a busy core: 61 s, spinning 76-96 s;
# alone 41 s, spinning 37 s)
OMP_WAIT_POLICY=PASSIVE "$py" -m pytest -ra --durations=25 --basetemp "$logs/rest-tmp" -m "not (server or browser or ray or one_thread)" \
  2>&1 | tee "$logs/rest.log"
status=${PIPESTATUS[0]}
wait "$ui"
ui_status=$?
set -e
echo "=== the server, browser and Ray tests (run beside the others) ==="
cat "$logs/ui.log"
"$py" scripts/test_totals.py "$logs/rest.log" "$logs/ui.log"
rm -rf "$logs"
[ "$status" -ne 0 ] && exit "$status"
exit "$ui_status"
