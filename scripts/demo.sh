#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build, run the
# bundled demo program under the agent and read its metrics from outside
# with the CLI while it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
scripts/build.sh

cli=build/cli/gometrics-cli
LD_PRELOAD=$PWD/build/agent/libgometrics.so build/tests/demo 6 4 &
demo=$!
trap 'kill $demo 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -e /dev/shm/gometrics.$demo ] && break; sleep 0.05; done

echo "== gometrics-cli ps"
$cli ps
for round in 1 2; do
  sleep 2
  echo "== gometrics-cli read --pid $demo (after $((round * 2)) s)"
  $cli read --pid $demo /gc/heap/allocs:objects /gc/heap/objects:objects /gc/heap/live:bytes \
    /gc/heap/allocs-by-size:bytes
done
echo "== gometrics-cli dump --pid $demo"
$cli dump --pid $demo
wait $demo
trap - EXIT
