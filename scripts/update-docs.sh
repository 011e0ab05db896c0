#!/usr/bin/env bash
# Regenerates the documentation pages made from tables in the code:
# docs/environment.md from the agent's GOMETRICS_* table (agent/config.cpp).
# One command after any change to that table:
#   scripts/update-docs.sh [build-dir]      (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
ninja -C "$build" gometrics-catalog >/dev/null
mkdir -p docs
"$build/gometrics-catalog" --format environment >docs/environment.md
echo "docs/environment.md regenerated"
