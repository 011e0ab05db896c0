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
# The overhead tables (realistic churn per allocator, whole programs, a short
# process) come first and are also written into docs/overhead.md and
# README.md, between their bench markers. BENCH_ONLY=overhead runs only those; BENCH_QUICK=1 is a smoke
# run of them (3 runs, short workloads) that leaves docs/overhead.md alone.
# Next, where the agent's instructions go (into docs/overhead.md, between its
# breakdown markers; BENCH_ONLY=breakdown runs only that), then the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh bench >/dev/null
scripts/build.sh
quick=${BENCH_QUICK:-}
runs=${1:-$([ -n "$quick" ] && echo 3 || echo 7)}
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
# scripts/setup.sh bench installs the alternatives).
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
  python=/usr/bin/python3  # the system's, as users run it (the python3 on PATH may be another build)
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

lib() { ls /usr/lib/*/"$1" 2>/dev/null | head -1; }
jemalloc=$(lib libjemalloc.so.2)
tcmalloc=$(lib libtcmalloc_minimal.so.4)
mimalloc=$(lib libmimalloc.so.2)
churn=build/tests/bench_churn
warnings=$tmp/warnings
touch "$warnings"

# The allocators of the overhead tables, one a line: "label|alone|with the
# agent" (environments; the agent first in LD_PRELOAD, as the README says).
allocators() {
  echo "glibc||LD_PRELOAD=$agent"
  # The agent loaded after start-up, as `gometrics-cli attach` loads it
  # (callgrind cannot follow a ptrace attach; a dlopen by the program counts
  # the same way: every call through a redirected GOT entry).
  echo "glibc, agent loaded late (as attached)||BENCH_CHURN_DLOPEN=$agent"
  if [ -n "$jemalloc" ]; then
    echo "jemalloc preloaded|LD_PRELOAD=$jemalloc|LD_PRELOAD=$agent:$jemalloc"
    echo "jemalloc switched to (GOMETRICS_ALLOCATOR=jemalloc)|LD_PRELOAD=$jemalloc|LD_PRELOAD=$agent GOMETRICS_ALLOCATOR=jemalloc"
  fi
  if [ -n "$tcmalloc" ]; then echo "tcmalloc (minimal) preloaded|LD_PRELOAD=$tcmalloc|LD_PRELOAD=$agent:$tcmalloc"; fi
  if [ -n "$mimalloc" ]; then echo "mimalloc preloaded|LD_PRELOAD=$mimalloc|LD_PRELOAD=$agent:$mimalloc"; fi
}

# What the agent said (a refused switch, say) would make a row measure
# something else: it is kept and printed under the table.
keep_warnings() { grep '^gometrics:' "$1" >>"$warnings" || true; }
print_warnings() {
  if [ -s "$warnings" ]; then
    echo
    sort -u "$warnings" | sed 's/^/Warning printed by the agent during these runs: /'
    if grep -q 'outside its brk heap' "$warnings" && [ "${1:-}" = callgrind ]; then
      echo "Under valgrind the switch refuses: the start of the heap it reads from /proc/self/stat is valgrind's own, not the program's emulated one. The switched configuration is timed below, not counted."
    fi
    : >"$warnings"
  fi
}

# Times on the realistic churn, every allocator alone and with the agent, all
# configurations alternating within each round. Medians of the thread's CPU
# time per pair (steadiest on a shared machine), the wall-time ratio of whole
# runs, and the fastest twentieth in wall time (what bench_malloc prints).
bench_churn_time() {
  # A twentieth of 600,000 steps lasts 1-2 ms: short enough that some slices
  # run unpreempted on a busy machine, as bench_malloc's do.
  local steps=600000
  [ -n "$quick" ] && steps=200000
  echo "### realistic churn: ns per malloc+free pair, per thread (medians of $runs alternating runs)"
  echo
  echo "\`bench_churn $steps THREADS\`: CPU is the thread's CPU time over the whole run, wall the whole run's wall time, fastest slice the fastest twentieth of the run in wall time (what \`bench_malloc\` prints)."
  echo
  echo "| threads | allocator | CPU alone | CPU with agent | added | ratio | wall ratio | fastest slice alone | with agent | ratio |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  local t e label alone with line w c f envs
  local -A cpu=() wall=() fast=() seen=()
  for t in 1 2; do
    cpu=() wall=() fast=() seen=() envs=()
    while IFS='|' read -r label alone with; do
      for e in "$alone" "$with"; do
        [ -n "${seen[x$e]:-}" ] || { seen[x$e]=1; envs+=("$e"); }
      done
    done < <(allocators)
    for _ in $(seq "$runs"); do
      for e in "${envs[@]}"; do
        line=$(timeout 600 env $e "$churn" "$steps" "$t" 2>"$tmp/err" | tail -1) || line=""
        keep_warnings "$tmp/err"
        read -r w c f <<<"$line"
        [ -n "$f" ] || continue
        wall[x$e]+="$w " cpu[x$e]+="$c " fast[x$e]+="$f "
      done
    done
    med() { tr ' ' '\n' <<<"$1" | grep . | median; }
    while IFS='|' read -r label alone with; do
      awk -v t="$t" -v l="$label" -v ca="$(med "${cpu[x$alone]:-}")" -v cw="$(med "${cpu[x$with]:-}")" \
        -v wa="$(med "${wall[x$alone]:-}")" -v ww="$(med "${wall[x$with]:-}")" \
        -v fa="$(med "${fast[x$alone]:-}")" -v fw="$(med "${fast[x$with]:-}")" 'BEGIN {
          if (ca == "" || cw == "") { printf "| %s | %s | did not finish | | | | | | | |\n", t, l; exit }
          printf "| %s | %s | %.2f | %.2f | %+.2f | %.3fx | %.3fx | %.2f | %.2f | %.3fx |\n",
            t, l, ca, cw, cw - ca, cw / ca, ww / wa, fa, fw, fw / fa }'
    done < <(allocators)
  done
  local pairs=4000000
  [ -n "$quick" ] && pairs=400000
  local configs=("no agent=" "gometrics=LD_PRELOAD=$agent") m
  echo
  echo -n "Beside it, \`bench_malloc\` (a ring of 16 blocks, fastest twentieth: the microbenchmark of the other tables of bench.sh), glibc, ns per pair:"
  for t in 1 2; do
    m=$(measure configs build/tests/bench_malloc "$t" "$pairs" | cut -f2 | paste -sd' ')
    awk -v t="$t" -v m="$m" 'BEGIN { split(m, v, " "); printf " %s thread%s %.2f alone, %.2f with the agent (%.3fx)%s",
      t, (t > 1 ? "s" : ""), v[1], v[2], v[2] / v[1], (t > 1 ? ".\n" : ";") }'
  done
  print_warnings
  echo
}

# Instructions callgrind counts for "$@" run in the environment $1; nothing
# when the agent stayed on glibc though asked to switch (under valgrind it
# does: /proc/self/stat's start_brk is valgrind's, not the program's heap).
instructions() {
  local envs=$1
  shift
  env $envs valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" >/dev/null 2>"$tmp/cg" || true
  keep_warnings "$tmp/cg"
  grep -q 'staying on glibc' "$tmp/cg" && return
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$tmp/cg" | tail -1
}

# Instructions per malloc+free pair of the churn, one thread: the difference
# between two run lengths over the difference in steps, so start-up, the
# table's filling and the exit cancel. The agent at its defaults (heap and
# mutex profiling on), and with both profiles off.
bench_churn_instructions() {
  command -v valgrind >/dev/null || { echo "(valgrind not installed: instruction counts skipped)"; echo; return; }
  local n1=100000 n2=300000
  [ -n "$quick" ] && n1=20000 n2=60000
  local off="GOMETRICS_PROFILE_RATE=0 GOMETRICS_MUTEX_PROFILE_FRACTION=0"
  echo "### realistic churn: instructions per malloc+free pair (callgrind, 1 thread)"
  echo
  echo "(instructions of \`bench_churn $n2\` - those of \`bench_churn $n1\`) / $((n2 - n1)); the agent at its defaults (heap and mutex profiling on), then with both profiles off."
  echo
  echo "| allocator | alone | with agent | added | with agent, profiling off | added |"
  echo "|---|---|---|---|---|---|"
  per_pair() {
    local a b
    a=$(instructions "$1" "$churn" "$n1")
    b=$(instructions "$1" "$churn" "$n2")
    awk -v a="$a" -v b="$b" -v d="$((n2 - n1))" 'BEGIN { if (a == "" || b == "") print ""; else printf "%.1f\n", (b - a) / d }'
  }
  local label alone with
  local -A cache=()
  while IFS='|' read -r label alone with; do
    [ -n "${cache[x$alone]:-}" ] || cache[x$alone]=$(per_pair "$alone")
    awk -v l="$label" -v a="${cache[x$alone]}" -v w="$(per_pair "$with")" -v o="$(per_pair "$with $off")" '
      function cell(v) { return v == "" ? "not measured" : sprintf("%.1f", v) }
      function added(v) { return v == "" || a == "" ? "" : sprintf("%+.1f", v - a) }
      BEGIN { printf "| %s | %s | %s | %s | %s | %s |\n", l, cell(a), cell(w), added(w), cell(o), added(o) }'
  done < <(allocators)
  print_warnings callgrind
  echo
}

# Whole programs, instructions with the agent over without: the system's
# python3 with every object through malloc, sqlite3 bulk inserts and an
# index, and a process that only starts and exits.
bench_whole_programs() {
  command -v valgrind >/dev/null || return 0
  local py=10 rows=60000
  [ -n "$quick" ] && py=2 rows=5000
  local off="GOMETRICS_PROFILE_RATE=0 GOMETRICS_MUTEX_PROFILE_FRACTION=0" db=$tmp/bench.db
  echo "### whole programs: instructions (callgrind)"
  echo
  echo "| program | no agent | with agent (default) | added | ratio | with agent, profiling off | ratio |"
  echo "|---|---|---|---|---|---|---|"
  local w label base n o e
  for w in python sqlite echo; do
    e=""
    case $w in
      python) label="\`PYTHONMALLOC=malloc /usr/bin/python3 alloc_heavy.py $py\`" e=PYTHONMALLOC=malloc
              set -- /usr/bin/python3 tests/realapps/workloads/alloc_heavy.py "$py" ;;
      sqlite) label="\`sqlite3\`: $rows rows inserted, then indexed"
              set -- /usr/bin/sqlite3 "$db" "create table n(v); insert into n values($rows);" \
                '.read tests/realapps/workloads/sqlite_inserts.sql' ;;
      echo) label="\`/bin/echo hi\`"
            set -- /bin/echo hi ;;
    esac
    rm -f "$db"; base=$(instructions "$e" "$@")
    rm -f "$db"; n=$(instructions "$e LD_PRELOAD=$agent" "$@")
    rm -f "$db"; o=$(instructions "$e LD_PRELOAD=$agent $off" "$@")
    awk -v l="$label" -v b="$base" -v n="$n" -v o="$o" 'BEGIN {
      printf "| %s | %d | %d | %+d | %.3fx | %d | %.3fx |\n", l, b, n, n - b, n / b, o, o / b }'
  done
  print_warnings
  echo
}

# Where the agent's instructions go on the churn: each of its functions'
# own instructions per malloc+free pair (code inlined into a function counts
# in it), as the difference of two run lengths, for the configurations whose
# hot paths differ. What trimming a hot path starts from.
bench_churn_breakdown() {
  command -v valgrind >/dev/null || return 0
  local n1=100000 n2=300000 label alone with n
  echo "### realistic churn: the agent's own instructions per pair, by function (callgrind, 1 thread)"
  echo
  echo "(instructions of \`bench_churn $n2\` - those of \`bench_churn $n1\`) / $((n2 - n1)), each function of the agent apart; functions under 0.05 left out. The agent at its defaults; $(date -u '+%Y-%m-%d'), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- agent || echo ' plus uncommitted changes')."
  echo
  echo "| configuration | function | instructions per pair |"
  echo "|---|---|---|"
  while IFS='|' read -r label alone with; do
    case $label in glibc | "glibc, agent loaded late"* | "jemalloc preloaded") ;; *) continue ;; esac
    for n in $n1 $n2; do
      env $with valgrind --tool=callgrind --compress-strings=no --compress-pos=no \
        --callgrind-out-file="$tmp/cg.$n" "$churn" "$n" >/dev/null 2>&1 || true
    done
    # Self cost lines follow fn=; a calls= line is followed by the call's
    # inclusive cost, which is not the function's own.
    awk -v n1="$tmp/cg.$n1" -v d="$((n2 - n1))" -v l="$label" '
      /^ob=/ { ob = substr($0, 4); next }
      /^fn=/ { fn = substr($0, 4); next }
      /^calls=/ { skip = 1; next }
      /^[0-9]/ { if (skip) { skip = 0; next } if (ob ~ /libgometrics/) c[FILENAME == n1, fn] += $NF }
      END {
        for (k in c) { split(k, p, SUBSEP); if (p[1] == 0) f[p[2]] += c[k]; else f[p[2]] -= c[k] }
        for (x in f) if (f[x] / d >= 0.05) { t += f[x] / d; printf "%.2f\t%s\n", f[x] / d, x }
        printf "%.2f\t(all the agent)\n", t
      }' "$tmp/cg.$n1" "$tmp/cg.$n2" | sort -t$'\t' -k1,1gr |
      sed -e 's/gometrics::agent:://g' -e 's/(anonymous namespace):://g' -e 's/(attach::Map)0/bytes/g' |
      awk -F'\t' -v l="$label" '{ printf "| %s | `%s` | %s |\n", l, $2, $1 }'
  done < <(allocators)
  echo
}

# A short process (RSS, 200 runs of /bin/true, address space) and the CLI's start-up.
bench_short_process() {
  echo "### a short process, and the CLI (medians of $runs alternating runs)"
  echo
  python3 scripts/bench_process.py --agent "$agent" --build build --runs "$runs"
  echo
}

bench_overhead() {
  echo "Measured by \`scripts/bench.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'): $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), Linux $(uname -r), glibc $(ldd --version | head -1 | awk '{print $NF}'), load $(cut -d' ' -f1 /proc/loadavg) at the start, commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- agent collectors ipc || echo ' plus uncommitted changes'), build type $(python3 -c 'import json; print(next(o["value"] for o in json.load(open("build/meson-info/intro-buildoptions.json")) if o["name"] == "buildtype"))')."
  echo
  bench_churn_instructions
  bench_whole_programs
  bench_churn_time
  bench_short_process
}

# Replaces what lies between the markers $3 (default bench) of $2
# (docs/overhead.md, README.md's "What it costs") with the file $1 (creating
# docs/overhead.md, with its bench markers, when it is missing).
write_overhead_doc() {
  local doc=${2:-docs/overhead.md} markers=${3:-bench}
  if [ ! -f "$doc" ]; then
    mkdir -p docs
    printf '# Overhead\n\n%s\n\n<!-- bench:begin -->\n<!-- bench:end -->\n' \
      'The tables below are written by `scripts/bench.sh`; a run replaces them.' >"$doc"
  fi
  python3 - "$doc" "$1" "$markers" <<'PY'
import sys
doc, block, name = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
text = open(doc).read()
begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
    sys.exit(f"bench.sh: {doc} needs one {begin} followed by one {end}")
head, rest = text.split(begin)
open(doc, "w").write(head + begin + "\n" + block.rstrip("\n") + "\n" + end + rest.split(end, 1)[1])
PY
  echo "(written into $doc)" >&2
}

echo "## gometrics benchmarks ($(date -u +%Y-%m-%d), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), glibc $(ldd --version | head -1 | awk '{print $NF}'), load $(cut -d' ' -f1 /proc/loadavg), $runs runs each; medians of runs unless a table says otherwise; the microbenchmarks print their fastest twentieth)"
echo
if [ "${BENCH_ONLY:-}" != breakdown ]; then
  bench_overhead | tee "$tmp/overhead.md"
  [ -n "$quick" ] || { write_overhead_doc "$tmp/overhead.md"; write_overhead_doc "$tmp/overhead.md" README.md; }
fi
if [ -z "$quick" ] && [ "${BENCH_ONLY:-}" != overhead ]; then
  bench_churn_breakdown | tee "$tmp/breakdown.md"
  write_overhead_doc "$tmp/breakdown.md" docs/overhead.md breakdown
fi
if [ -z "$quick" ] && [ -z "${BENCH_ONLY:-}" ]; then
  bench_alternatives
  bench_instructions
  bench_profile
  bench_locks
  bench_scrape
  bench_malloc_jemalloc
  bench_alloc_stats
  bench_exec
  bench_trace
fi
