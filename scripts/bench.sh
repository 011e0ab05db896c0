#!/usr/bin/env bash
# Overhead benchmarks: every figure is a ratio against the same program
# without the agent, measured in the same run, as the median of several
# alternating runs. Benchmarks measure; they never assert (tests do not time).
#   scripts/bench.sh [runs]     (default 7)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build >/dev/null
scripts/build.sh
runs=${1:-7}
agent=$PWD/build/agent/libgometrics.so

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# Runs "$@" $runs times in each configuration (alternating, so drift hits all
# alike); each run prints one number. Prints the median per configuration.
# Configurations are "label=ENV..." strings; an empty env is the baseline.
measure() {
  local -n _configs=$1
  shift
  declare -A samples=()
  for _ in $(seq "$runs"); do
    for c in "${_configs[@]}"; do
      local label=${c%%=*} envs=${c#*=}
      samples[$label]+="$(env $envs "$@") "
    done
  done
  for c in "${_configs[@]}"; do
    local label=${c%%=*}
    printf '%s\t%s\n' "$label" "$(tr ' ' '\n' <<<"${samples[$label]}" | grep . | median)"
  done
}

# Prints a markdown table row per configuration: ns, added ns, ratio.
table() {
  local what=$1 base=""
  while IFS=$'\t' read -r label value; do
    [ -z "$base" ] && base=$value
    awk -v w="$what" -v l="$label" -v v="$value" -v b="$base" \
      'BEGIN { printf "| %s | %s | %.2f | %+.2f | %.3fx |\n", w, l, v, v - b, v / b }'
  done
}

bench_malloc() {
  echo "### malloc+free pair, mixed sizes 16 B-1 KiB (ns per pair, per thread)"
  echo
  echo "| threads | configuration | ns/pair | added ns | ratio |"
  echo "|---|---|---|---|---|"
  local configs=("no agent=" "gometrics=LD_PRELOAD=$agent")
  for t in 1 2; do
    measure configs build/tests/bench_malloc "$t" 4000000 | table "$t"
  done
  echo
}

# Wall time of one run of "$@" in µs: under `gometrics-cli exec` when GM_EXEC
# is set, with LD_PRELOAD=$GM_PRELOAD when that is (only the program is
# preloaded, not this shell and its `date`s).
wall_us() {
  local start=$(date +%s%N)
  if [ -n "${GM_EXEC:-}" ]; then
    build/cli/gometrics-cli exec -q -- "$@" >/dev/null
  elif [ -n "${GM_PRELOAD:-}" ]; then
    LD_PRELOAD=$GM_PRELOAD "$@" >/dev/null
  else
    "$@" >/dev/null
  fi
  echo $((($(date +%s%N) - start) / 1000))
}
export -f wall_us

bench_exec() {
  echo "### a short program from start to exit (leak 0: 10k malloc/free pairs), µs of wall time"
  echo
  echo "| program | configuration | µs | added µs | ratio |"
  echo "|---|---|---|---|---|"
  local configs=("no agent=" "LD_PRELOAD=GM_PRELOAD=$agent" "gometrics-cli exec=GM_EXEC=1")
  measure configs bash -c 'wall_us "$@"' _ build/tests/leak 0 | table leak
  echo
}

bench_trace() {
  echo "### GOMETRICS_TRACE at a 10 ms interval (a line per 10 ms to /dev/null), ns per malloc+free pair, 1 thread"
  echo
  echo "| threads | configuration | ns/pair | added ns | ratio |"
  echo "|---|---|---|---|---|"
  local configs=("agent, no trace=LD_PRELOAD=$agent GOMETRICS_INTERVAL_MS=10"
    "agent, trace=LD_PRELOAD=$agent GOMETRICS_INTERVAL_MS=10 GOMETRICS_TRACE=/dev/null")
  measure configs build/tests/bench_malloc 1 4000000 | table 1
  echo
}

echo "## gometrics benchmarks ($(date -u +%Y-%m-%d), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), glibc $(ldd --version | head -1 | awk '{print $NF}'), $runs runs each, medians)"
echo
bench_malloc
bench_exec
bench_trace
