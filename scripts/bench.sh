#!/usr/bin/env bash
# Overhead benchmarks: every figure is a ratio against the same program
# without the agent, measured in the same run, as the median of several
# alternating runs. Benchmarks measure; they never assert (tests do not time).
# Alongside gometrics, the alternatives a user would weigh it against:
# heaptrack, glibc's memusage (libmemusage.so) and ltrace.
#   scripts/bench.sh [runs]     (default 7)
# BENCH_CLOCK=cpu measures the real workloads in CPU seconds (user + system
# of the program and its children, heaptrack's interpreter included) instead
# of wall seconds: steadier on a machine shared with other work.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build >/dev/null
scripts/build.sh
runs=${1:-7}
agent=$PWD/build/agent/libgometrics.so
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {if (NR) print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# One run of "$@" in the environment (or wrapper) $1; prints one number: the
# time in seconds when $wall is set (output discarded; wall clock, or CPU
# time with BENCH_CLOCK=cpu), else the last number the program printed (a
# wrapper's own chatter is skipped). Prints nothing when the run fails or
# exceeds $limit seconds.
run_once() {
  local envs=$1
  shift
  if [ -n "${wall:-}" ] && [ "${BENCH_CLOCK:-wall}" = cpu ]; then
    # `times` in a subshell: its second line is the children's user and system time
    (timeout "${limit:-600}" env $envs "$@" >/dev/null 2>&1 || exit 1; times) | awk 'NR == 2 {
      split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.4f\n", u[1] * 60 + u[2] + s[1] * 60 + s[2] }'
  elif [ -n "${wall:-}" ]; then
    local t0=$EPOCHREALTIME
    timeout "${limit:-600}" env $envs "$@" >/dev/null 2>&1 || return 0
    awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f\n", b - a }'
  else
    { timeout "${limit:-600}" env $envs "$@" 2>/dev/null || true; } | grep -E '^[0-9.]+$' | tail -1
  fi
}

# Runs "$@" $runs times in each configuration (alternating, so drift hits all
# alike); each run prints one number. Prints the median per configuration.
# Configurations are "label=ENV..." strings (ENV may end with a wrapper
# command, e.g. "heaptrack -o FILE"); an empty env is the baseline.
measure() {
  local -n _configs=$1
  shift
  declare -A samples=()
  for _ in $(seq "$runs"); do
    for c in "${_configs[@]}"; do
      local label=${c%%=*} envs=${c#*=}
      samples[$label]+="$(run_once "$envs" "$@") "
    done
  done
  for c in "${_configs[@]}"; do
    local label=${c%%=*}
    printf '%s\t%s\n' "$label" "$(tr ' ' '\n' <<<"${samples[$label]}" | grep . | median)"
  done
}

# Prints a markdown table row per configuration: value, added, ratio. The
# first row is the baseline; a configuration that did not finish says so.
table() {
  local what=$1 base=""
  while IFS=$'\t' read -r label value; do
    [ -z "$base" ] && base=$value
    if [ -z "$value" ]; then
      printf '| %s | %s | did not finish | | |\n' "$what" "$label"
      continue
    fi
    awk -v w="$what" -v l="$label" -v v="$value" -v b="$base" \
      'BEGIN { printf "| %s | %s | %.2f | %+.2f | %.3fx |\n", w, l, v, v - b, v / b }'
  done
}

# The alternatives, when installed (scripts/setup.sh test installs them).
memusage_lib=$(ls /usr/lib/*/libmemusage.so /usr/lib/libmemusage.so 2>/dev/null | head -1 || true)
configs=("no agent=" "gometrics=LD_PRELOAD=$agent")
command -v heaptrack >/dev/null && configs+=("heaptrack=heaptrack -o $tmp/heaptrack")
[ -n "$memusage_lib" ] && configs+=("memusage=LD_PRELOAD=$memusage_lib")
ltrace_config=()
command -v ltrace >/dev/null && ltrace_config=("ltrace=ltrace -f -e malloc+free -o /dev/null")

bench_malloc() {
  echo "### malloc+free pair, mixed sizes 16 B-1 KiB (ns per pair, per thread)"
  echo
  echo "| threads | configuration | ns/pair | added ns | ratio |"
  echo "|---|---|---|---|---|"
  for t in 1 2; do
    local rows
    rows=$(measure configs build/tests/bench_malloc "$t" 2000000)
    # ltrace stops the process at every call: far fewer pairs, same ns/pair.
    [ ${#ltrace_config[@]} -gt 0 ] && rows+=$'\n'$(limit=120 measure ltrace_config build/tests/bench_malloc "$t" 20000)
    table "$t" <<<"$rows"
    added_ratios "$t" <<<"$rows" >>"$tmp/summary"
  done
  echo
  cat "$tmp/summary"
  echo
}

# "threads T: added time per pair, X: N times gometrics'" for each alternative.
added_ratios() {
  awk -F'\t' -v t="$1" 'NR == 1 { base = $2; next }
    $1 == "gometrics" { ours = $2 - base; next }
    $2 != "" { other[$1] = $2 - base }
    END { for (k in other) if (ours > 0) printf "- %d thread(s): %s adds %.0fx the time per pair that gometrics adds\n", t, k, other[k] / ours }'
}

# Real workloads: wall time in seconds, whole program.
bench_workloads() {
  echo "### Real workloads (${BENCH_CLOCK:-wall} seconds)"
  echo
  echo "| workload | configuration | seconds | added s | ratio |"
  echo "|---|---|---|---|---|"
  # PYTHONMALLOC=malloc: every object through malloc, the case where a malloc tool costs most.
  # The interpreter itself, not a wrapper script (pyenv's shims are shell scripts).
  local python
  python=$(python3 -c 'import sys; print(sys.executable)')
  wall=1 measure configs env PYTHONMALLOC=malloc "$python" tests/realapps/workloads/alloc_heavy.py 100 |
    table "python3 alloc_heavy.py 100"
  local db=$tmp/bench.db
  wall=1 measure configs sh -c "rm -f $db; exec sqlite3 $db 'create table n(v); insert into n values(500000);' \
    '.read tests/realapps/workloads/sqlite_inserts.sql'" | table "sqlite3 500k inserts"
  echo
}

echo "## gometrics benchmarks ($(date -u +%Y-%m-%d), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), glibc $(ldd --version | head -1 | awk '{print $NF}'), load $(cut -d' ' -f1 /proc/loadavg), $runs runs each, medians)"
echo
bench_malloc
bench_workloads
