#!/usr/bin/env bash
# Sets up, builds and runs every test suite (unit, preload, realapps).
# Exit status: meson test's. The log is build/meson-logs/testlog.json.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
scripts/build.sh
meson test -C build --print-errorlogs --num-processes 2 "$@"
