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

bench_locks() {
  echo "### pthread mutex (ns per lock+unlock pair)"
  echo
  echo "| case | configuration | ns/pair | added ns | ratio |"
  echo "|---|---|---|---|---|"
  local configs=("no agent=" "gometrics=LD_PRELOAD=$agent")
  measure configs build/tests/bench_lock lock 20000000 | table "uncontended, single-threaded program"
  # An idle second thread in both runs: glibc drops the lock prefix while a
  # process is single-threaded, and the publisher thread ends that, so this
  # row is the cost of the hook itself.
  measure configs build/tests/bench_lock lock-mt 20000000 | table "uncontended, multi-threaded program"
  # What mutrace's "try first, time on failure" would pay on every lock: trylock where lock was.
  local base=("no agent=")
  measure base build/tests/bench_lock trylock-mt 20000000 | table "uncontended trylock, multi-threaded"
  measure configs build/tests/bench_lock contended 2000000 | table "contended, 2 threads"
  echo
  echo "### snapshot computation (every metric; microseconds per snapshot, median of 50)"
  echo
  echo "| live threads | us/snapshot |"
  echo "|---|---|"
  for t in 1 100 1000; do
    echo "| $t | $(build/tests/bench_snapshot "$t" 50) |"
  done
  echo
}

echo "## gometrics benchmarks ($(date -u +%Y-%m-%d), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), glibc $(ldd --version | head -1 | awk '{print $NF}'), $runs runs each, medians)"
echo
bench_malloc
bench_locks
