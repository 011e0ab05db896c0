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

# gometrics against heaptrack, glibc's memusage and ltrace, on the malloc
# microbenchmark and two real workloads, in one table (bench_alternatives.py;
# scripts/setup.sh test installs the alternatives).
bench_alternatives() {
  echo "### gometrics and the alternatives (fastest of $runs alternating rounds; ratios to no agent)"
  echo
  python3 scripts/bench_alternatives.py --agent "$agent" --build build --runs "$runs" --clock "${BENCH_CLOCK:-wall}"
}

# Instructions executed (callgrind): the same as the timings but exact and
# repeatable, so a change of a few instructions per call is visible through
# the noise of a shared machine. Smaller workloads: callgrind runs ~50x
# slower, which would multiply the publisher's interval snapshots by as much,
# so the agent runs here with a one-hour interval (a snapshot's own cost is
# bench_snapshot's table).
bench_instructions() {
  command -v valgrind >/dev/null || { echo "(valgrind not installed: instruction counts skipped)"; echo; return; }
  echo "### instructions executed (callgrind, whole program; ratio to no agent)"
  echo
  echo "| workload | no agent | gometrics, profiling off | gometrics (default) | gometrics, lazy publisher |"
  echo "|---|---|---|---|---|"
  local python db=$tmp/instr.db
  python=$(python3 -c 'import sys; print(sys.executable)')
  instr() {  # instructions of "$@" under the environment in $1
    local envs=$1
    shift
    rm -f "$db"
    env $extra $envs valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
      sed -n 's/.*Collected : \([0-9]*\).*/\1/p' | tail -1
  }
  local w label base row envs n extra
  for w in python python-malloc sqlite malloc; do
    extra=""
    case $w in
      python) label="python3 alloc_heavy.py 20"
              set -- "$python" tests/realapps/workloads/alloc_heavy.py 20 ;;
      python-malloc) label="same, PYTHONMALLOC=malloc" extra=PYTHONMALLOC=malloc
              set -- "$python" tests/realapps/workloads/alloc_heavy.py 20 ;;
      sqlite) label="sqlite3, 100k inserts"
              set -- sqlite3 "$db" 'create table n(v); insert into n values(100000);' \
                '.read tests/realapps/workloads/sqlite_inserts.sql' ;;
      malloc) label="bench_malloc, 1M pairs"
              set -- build/tests/bench_malloc 1 1000000 ;;
    esac
    base=$(instr "" "$@")
    row="| $label | $base |"
    local hour="LD_PRELOAD=$agent GOMETRICS_INTERVAL_MS=3600000"
    for envs in "$hour GOMETRICS_PROFILE_RATE=0 GOMETRICS_MUTEX_PROFILE_FRACTION=0" "$hour" \
                "$hour GOMETRICS_PUBLISHER=lazy"; do
      n=$(instr "$envs" "$@")
      row+=$(awk -v n="$n" -v b="$base" 'BEGIN { printf " %d (%.3fx) |", n, n / b }')
    done
    echo "$row"
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
  scrape_tmp=$(mktemp -d) pids=() srv=""
  # No sleeper, segment or server outlives a failed run (globals: the trap runs after we return).
  trap 'kill "${pids[@]}" $srv 2>/dev/null; wait; for p in "${pids[@]}"; do rm -f /dev/shm/gometrics.$p; done; rm -rf "$scrape_tmp" "$tmp"' EXIT
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
      build/cli/gometrics-cli serve --listen 127.0.0.1:0 --fresh-timeout-ms "$fresh" "${args[@]}" >"$scrape_tmp/out" 2>"$scrape_tmp/err" &
      srv=$!
      for _ in $(seq 200); do grep -q listening "$scrape_tmp/out" && break; sleep 0.05; done
      local port ms kib gz cpu_ms
      port=$(sed -n 's|.*127.0.0.1:\([0-9]*\)/.*|\1|p' "$scrape_tmp/out")
      [ -n "$port" ] || { echo "serve did not start: $(cat "$scrape_tmp/err")" >&2; return 1; }
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
  rm -rf "$scrape_tmp"
  trap 'rm -rf "$tmp"' EXIT
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

echo "## gometrics benchmarks ($(date -u +%Y-%m-%d), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), glibc $(ldd --version | head -1 | awk '{print $NF}'), load $(cut -d' ' -f1 /proc/loadavg), $runs runs each; medians of runs unless a table says otherwise; the microbenchmarks print their fastest twentieth)"
echo
bench_alternatives
bench_instructions
bench_profile
bench_locks
bench_scrape
bench_malloc_jemalloc
bench_alloc_stats
bench_exec
bench_trace
