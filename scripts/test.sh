#!/usr/bin/env bash
# Sets up, builds and runs every test suite (unit, preload, realapps).
# Exit status: meson test's. The log is build/meson-logs/testlog.json.
# Without arguments it then also runs the sanitizer builds
# (scripts/sanitize.sh) and each fuzzer for $GOMETRICS_FUZZ_SECONDS (default
# 30; 0 skips them both), and fails if any of them fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
scripts/build.sh
status=0
meson test -C build --print-errorlogs --num-processes 2 "$@" || status=$?
if [ $# -eq 0 ] && [ "${GOMETRICS_FUZZ_SECONDS:-30}" != 0 ]; then
  scripts/sanitize.sh || status=$((status ? status : 1))
  scripts/fuzz.sh "${GOMETRICS_FUZZ_SECONDS:-30}" || status=$((status ? status : 1))
fi
exit $status
