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

# One configuration of bench_profile, chosen by $MODE (measure() passes
# configurations as environment); heaptrack prints its own messages, so only
# the program's number is kept.
profile_run() {
  case $MODE in
    none) "$@" ;;
    off) LD_PRELOAD=$agent GOMETRICS_PROFILE_RATE=0 GOMETRICS_MUTEX_PROFILE_FRACTION=0 "$@" ;;
    default) LD_PRELOAD=$agent "$@" ;;
    rate32k) LD_PRELOAD=$agent GOMETRICS_PROFILE_RATE=32768 "$@" ;;
    heaptrack)
      local out
      out=$(mktemp -d)
      heaptrack -o "$out/ht" "$@" 2>/dev/null | grep -E '^[0-9.]+$' | tail -1
      rm -rf "$out" ;;
  esac
}

bench_profile() {
  echo "### malloc+free pair with heap profiling (ns per pair, per thread)"
  echo
  echo "| threads | configuration | ns/pair | added ns | ratio |"
  echo "|---|---|---|---|---|"
  export agent
  export -f profile_run
  local configs=("no agent=MODE=none" "gometrics, profiling off=MODE=off"
                 "gometrics, profiling at 512 KiB (default)=MODE=default"
                 "gometrics, profiling at 32 KiB=MODE=rate32k" "heaptrack=MODE=heaptrack")
  for t in 1 2; do
    measure configs bash -c 'profile_run "$@"' _ build/tests/bench_malloc "$t" 1000000 | table "$t"
  done
  echo
}

echo "## gometrics benchmarks ($(date -u +%Y-%m-%d), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), glibc $(ldd --version | head -1 | awk '{print $NF}'), $runs runs each, medians)"
echo
bench_malloc
bench_profile
