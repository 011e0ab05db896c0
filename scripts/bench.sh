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
}

# Latency of one /metrics scrape of `gometrics-cli serve` exporting N idle
# instrumented processes (`sleep` under the agent), as Prometheus sees it
# (OpenMetrics, gzip): the median over $runs x 5 scrapes, with fresh snapshots
# (the default: every process asked at once, then awaited) and with the
# latest published ones; and the CPU time serve spent per scrape (user +
# system, which a busy machine inflates less than wall-clock time).
bench_scrape() {
  echo "### serve: one /metrics scrape of N instrumented processes (ms, median of $((runs * 5)))"
  echo
  echo "| processes | fresh snapshots (default) | latest snapshots (--fresh-timeout-ms 0) | serve CPU ms/scrape (fresh, latest) | page KiB | gzipped KiB |"
  echo "|---|---|---|---|---|---|"
  tmp=$(mktemp -d) pids=() srv=""
  # No sleeper, segment or server outlives a failed run (globals: the trap runs after we return).
  trap 'kill "${pids[@]}" $srv 2>/dev/null; wait; for p in "${pids[@]}"; do rm -f /dev/shm/gometrics.$p; done; rm -rf "$tmp"' EXIT
  for n in 1 10 100; do
    local args=() row="| $n |" sizes="" cpu=""
    pids=()
    for _ in $(seq "$n"); do
      LD_PRELOAD=$agent sleep 300 &
      pids+=("$!")
      args+=(--pid "$!")
    done
    for p in "${pids[@]}"; do
      for _ in $(seq 200); do [ -e "/dev/shm/gometrics.$p" ] && break; sleep 0.05; done
    done
    for fresh in 50 0; do
      build/cli/gometrics-cli serve --listen 127.0.0.1:0 --fresh-timeout-ms "$fresh" "${args[@]}" >"$tmp/out" 2>"$tmp/err" &
      srv=$!
      for _ in $(seq 200); do grep -q listening "$tmp/out" && break; sleep 0.05; done
      local port ms kib gz cpu_ms
      port=$(sed -n 's|.*127.0.0.1:\([0-9]*\)/.*|\1|p' "$tmp/out")
      [ -n "$port" ] || { echo "serve did not start: $(cat "$tmp/err")" >&2; return 1; }
      read -r ms kib gz cpu_ms < <(python3 - "$port" "$((runs * 5))" "$n" "$srv" <<'PY'
import gzip, os, statistics, sys, time, urllib.request
port, k, n, srv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
def cpu_ticks():
    with open(f"/proc/{srv}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime
cpu0 = cpu_ticks()
headers = {"Accept-Encoding": "gzip", "Accept": "application/openmetrics-text;version=1.0.0,"
           "application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"}
times = []
for _ in range(k):
    t0 = time.perf_counter()
    packed = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers),
                                    timeout=30).read()
    times.append((time.perf_counter() - t0) * 1000)
cpu = (cpu_ticks() - cpu0) * 1000 / os.sysconf("SC_CLK_TCK") / k
page = gzip.decompress(packed)
assert f"serve_processes {n}.0\n".encode() in page, "not every process was exported"
print(f"{statistics.median(times):.1f} {len(page) / 1024:.0f} {len(packed) / 1024:.0f} {cpu:.1f}")
PY
)
      row+=" $ms |"
      cpu+="${cpu:+, }$cpu_ms"
      sizes="$kib | $gz |"
      kill "$srv"
      wait "$srv" || true
      srv=""
    done
    echo "$row $cpu | $sizes"
    # SIGTERM skips the agent's exit path: remove the segments it leaves.
    kill "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null || true
    for p in "${pids[@]}"; do rm -f "/dev/shm/gometrics.$p"; done
  done
  pids=()
  rm -rf "$tmp"
  trap - EXIT
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
bench_alloc_stats() {
  echo "### snapshot cost with allocator statistics (microseconds, median of $runs)"
  echo
  echo "| allocator | arenas/threads | free chunks | back-end read | whole snapshot |"
  echo "|---|---|---|---|---|"
  local t blocks
  for t in 1 16; do
    for blocks in 200 20000; do
      local reads=() snaps=() name=""
      for _ in $(seq "$runs"); do
        read -r name r s < <(build/tests/bench_alloc_stats "$t" "$blocks" 50)
        reads+=("$r"); snaps+=("$s")
      done
      echo "| $name | $t | $((t * blocks / 2)) | $(printf '%s\n' "${reads[@]}" | median) | $(printf '%s\n' "${snaps[@]}" | median) |"
      if [ -n "$jemalloc" ]; then
        reads=(); snaps=()
        for _ in $(seq "$runs"); do
          read -r name r s < <(LD_PRELOAD=$jemalloc build/tests/bench_alloc_stats "$t" "$blocks" 50)
          reads+=("$r"); snaps+=("$s")
        done
        echo "| $name | $t | $((t * blocks / 2)) | $(printf '%s\n' "${reads[@]}" | median) | $(printf '%s\n' "${snaps[@]}" | median) |"
      fi
    done
  done
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
bench_locks
bench_scrape
bench_malloc_jemalloc
bench_alloc_stats
bench_exec
bench_trace
