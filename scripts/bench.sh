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

jemalloc=$(ls /usr/lib/*/libjemalloc.so.2 2>/dev/null | head -1)

# GOMETRICS_ALLOCATOR=jemalloc (the agent serves malloc from a private
# libjemalloc, routing by address) against jemalloc preloaded alone, and the
# agent forwarding to a preloaded jemalloc.
bench_malloc_jemalloc() {
  [ -n "$jemalloc" ] || { echo "(no libjemalloc.so.2: skipped)"; return; }
  echo "### malloc+free pair on jemalloc (ns per pair, per thread; ratio against jemalloc alone)"
  echo
  echo "| threads | configuration | ns/pair | added ns | ratio |"
  echo "|---|---|---|---|---|"
  local configs=("jemalloc alone=LD_PRELOAD=$jemalloc"
    "gometrics, switched to jemalloc=LD_PRELOAD=$agent GOMETRICS_ALLOCATOR=jemalloc"
    "gometrics + preloaded jemalloc=LD_PRELOAD=$agent:$jemalloc")
  for t in 1 2; do
    measure configs build/tests/bench_malloc "$t" 4000000 | table "$t"
  done
  echo
}

# One snapshot with allocator statistics on: the back-end's read alone
# (mallinfo2 walks every free chunk of every arena under its lock; jemalloc
# merges its arenas' stats on "epoch"), and a whole snapshot of the
# catalogue, whose allocator reads are held to 1% of the time.
bench_snapshot() {
  echo "### snapshot cost with allocator statistics (microseconds, median of $runs)"
  echo
  echo "| allocator | arenas/threads | free chunks | back-end read | whole snapshot |"
  echo "|---|---|---|---|---|"
  local t blocks
  for t in 1 16; do
    for blocks in 200 20000; do
      local reads=() snaps=() name=""
      for _ in $(seq "$runs"); do
        read -r name r s < <(build/tests/bench_snapshot "$t" "$blocks" 50)
        reads+=("$r"); snaps+=("$s")
      done
      echo "| $name | $t | $((t * blocks / 2)) | $(printf '%s\n' "${reads[@]}" | median) | $(printf '%s\n' "${snaps[@]}" | median) |"
      if [ -n "$jemalloc" ]; then
        reads=(); snaps=()
        for _ in $(seq "$runs"); do
          read -r name r s < <(LD_PRELOAD=$jemalloc build/tests/bench_snapshot "$t" "$blocks" 50)
          reads+=("$r"); snaps+=("$s")
        done
        echo "| $name | $t | $((t * blocks / 2)) | $(printf '%s\n' "${reads[@]}" | median) | $(printf '%s\n' "${snaps[@]}" | median) |"
      fi
    done
  done
  echo
}

echo "## gometrics benchmarks ($(date -u +%Y-%m-%d), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), glibc $(ldd --version | head -1 | awk '{print $NF}'), $runs runs each, medians)"
echo
bench_malloc
bench_malloc_jemalloc
bench_snapshot
