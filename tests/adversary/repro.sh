#!/bin/sh
# Adversarial checks of the agent (issue 14's promises). Each check runs the
# program without the agent first (it must pass there), then under it.
# Usage: tests/adversary/repro.sh [BUILD_DIR]   (default: build)
# Prints one PASS/FAIL line per check; exits 1 if any check failed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../../build}" && pwd)
A=$build/agent/libgometrics.so
CLI=$build/cli/gometrics-cli
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for c in "$here"/*.c; do gcc -O1 -pthread -w -o "$out/$(basename "$c" .c)" "$c" || exit 2; done
failed=0
check() {  # NAME EXPECTED_STATUS COMMAND...: the command under the agent must exit EXPECTED_STATUS
    name=$1 want=$2; shift 2
    "$@" >"$out/log" 2>&1; got=$?
    if [ "$got" = "$want" ]; then echo "PASS $name"; else
        echo "FAIL $name: exit $got, expected $want"; sed 's/^/     /' "$out/log" | tail -3; failed=1; fi
}
P=$out
# Baselines: without the agent every program behaves.
# childns needs user namespaces, which a chroot does not get: checked only where it works.
childns_ok=0; "$P/childns" >/dev/null 2>&1 && childns_ok=1
for p in "seccomp_open" "env WITH_THREAD=1 $P/seccomp_open" "env WITH_FORK=1 $P/seccomp_open" "sigq" "fdrace 1"; do
    case $p in env*) cmd=$p;; *) cmd="$P/$p";; esac
    $cmd >/dev/null 2>&1 || { echo "baseline failed: $p"; exit 2; }
done

# 1. seccomp forbidding open/openat (the issue's filter), then a thread: SIGSYS.
check "seccomp: a thread started and joined after confining" 0 env LD_PRELOAD=$A WITH_THREAD=1 $P/seccomp_open
check "seccomp: same, eager publisher" 0 env LD_PRELOAD=$A GOMETRICS_PUBLISHER=thread WITH_THREAD=1 $P/seccomp_open
# 2. ... then a fork whose child allocates.
check "seccomp: a forked child that allocates" 0 env LD_PRELOAD=$A WITH_FORK=1 $P/seccomp_open
# 3. ... with a report path (GOMETRICS_REPORT, or exec --report which sets it).
check "seccomp: GOMETRICS_REPORT at exit" 0 env LD_PRELOAD=$A GOMETRICS_REPORT=$out/r.json $P/seccomp_open
check "seccomp: exec --report" 0 "$CLI" exec --report $out/e.json -- $P/seccomp_open
check "seccomp: SIGSEGV with GOMETRICS_REPORT dies of SIGSEGV (139)" 139 sh -c "LD_PRELOAD=$A GOMETRICS_REPORT=$out/s.json WITH_SEGV=1 exec $P/seccomp_open"
# 4. lowest-free-descriptor rule while the program's threads come and go:
# left out. In a program with threads of its own the publisher opens each
# thread's schedstat on the kept /proc/self/task at every snapshot (the
# docs/agent.md's one known exception); `fdrace 2` shows it a few times in millions.
# 4b. a child forked from a multi-threaded program has no thread of ours.
[ $childns_ok = 1 ] && check "forked child of a threaded program: unshare(CLONE_NEWUSER)" 0 env LD_PRELOAD=$A $P/childns
# 4c. under a descriptor limit below 256 the process must still be readable.
check "ulimit -n 200: gometrics-cli read of a live process" 0 sh -c "ulimit -n 200; LD_PRELOAD=$A sleep 2 & p=\$!; sleep 0.3; '$CLI' read -p \$p /gc/heap/allocs:objects; r=\$?; wait; exit \$r"
# 5. handlers set with sigset/sysv_signal/bsd_signal, queried with sigaction.
check "sigset/sysv_signal/bsd_signal then sigaction()" 0 env LD_PRELOAD=$A $P/sigq
# 6. the fold after SIGKILL / SIGSTOP: a thread's allocations freed by main.
# (Beyond 256 threads at once the slots are private and readers see them as
# of the last snapshot: a known limit, not checked here.)
for n in 0 16; do
    rm -f $out/k.json
    KILLSELF=1 "$CLI" exec --report $out/k.json -- $P/manythreads $n >/dev/null 2>&1
    v=$(/usr/bin/python3 -c "
import json; (p,) = json.load(open('$out/k.json'))['processes']; m = {e['name']: e['value'] for e in p['metrics']}
print(m['/gc/heap/allocs:objects'], m['/gc/heap/frees:objects'])")
    set -- $v
    if [ "$1" -ge "$2" ]; then echo "PASS exec --report after SIGKILL, $n idle threads: allocs $1 >= frees $2"
    else echo "FAIL exec --report after SIGKILL, $n idle threads: allocs $1 < frees $2"; failed=1; fi
done
# 6b. a signal handler's allocations (freed later by main) must be counted.
rm -f $out/sa.json
env LD_PRELOAD=$A GOMETRICS_REPORT=$out/sa.json $P/sigalloc 3 >/dev/null 2>&1
v=$(/usr/bin/python3 -c "
import json; m = {e['name']: e['value'] for e in json.load(open('$out/sa.json'))['metrics']}
print(m['/gc/heap/allocs:objects'], m['/gc/heap/frees:objects'])")
set -- $v
if [ "$1" -ge "$2" ]; then echo "PASS allocations in a signal handler: allocs $1 >= frees $2"
else echo "FAIL allocations in a signal handler: frees exceed allocs by $(($2 - $1))"; failed=1; fi
# 7. several threads abort() at once: the report must still be written.
none=0
for i in $(seq 30); do
    rm -f $out/m.json
    env LD_PRELOAD=$A GOMETRICS_REPORT=$out/m.json $P/multicrash 4 >/dev/null 2>&1
    [ -s $out/m.json ] || none=$((none + 1))
done
if [ $none = 0 ]; then echo "PASS 4 threads abort() at once: a report each of 30 runs"
else echo "FAIL 4 threads abort() at once: no report in $none of 30 runs"; failed=1; fi
exit $failed
