#!/usr/bin/env python3
"""gometrics against the tools a user would weigh it against, in one table:
the malloc microbenchmark (1 and 2 threads) and two real workloads (python3,
as it runs and with every object through malloc, and sqlite3 bulk inserts),
each under no agent, gometrics with profiling off, gometrics as it starts
by default (heap and mutex profiles on), gometrics with the lazy publisher,
heaptrack, glibc's memusage and ltrace. Configurations alternate within each round, so drift
on a shared machine hits them alike; a cell is the fastest of the rounds
(noise from other work only ever adds time), and its ratio that against
no agent's fastest.

    bench_alternatives.py --agent LIB --build DIR [--runs N] [--clock wall|cpu]

Called by scripts/bench.sh; benchmarks measure, they never assert."""

import argparse
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time


def run_once(cmd, env, limit, measure):
    """Runs cmd; returns the measured number, or a string saying why there is
    none (it failed, or ran past `limit` seconds). measure: 'program' (the
    last number it printed), 'wall' (seconds) or 'cpu' (user + system
    seconds, children included)."""
    t0 = time.perf_counter()
    # A process group of its own: past the limit, the whole group goes (a
    # killed ltrace would leave its tracee running on, skewing what follows).
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         start_new_session=True)
    expired = threading.Event()

    def expire():
        expired.set()
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended just now
            pass

    timer = threading.Timer(limit, expire)
    timer.start()
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    timer.cancel()
    try:
        os.killpg(p.pid, signal.SIGKILL)  # anything it left behind
    except ProcessLookupError:
        pass
    if expired.is_set() and wall >= limit:
        return f"did not finish in {limit:g} s"
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        return f"failed ({'signal ' + str(-code) if code < 0 else 'status ' + str(code)})"
    if measure == "wall":
        return wall
    if measure == "cpu":
        return usage.ru_utime + usage.ru_stime
    numbers = [line for line in out.split() if line.replace(".", "", 1).isdigit()]
    return float(numbers[-1]) if numbers else "printed no number"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = ap.parse_args()
    source = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tmp = tempfile.mkdtemp(prefix="gm-bench-")
    bench = os.path.join(args.build, "tests", "bench_malloc")
    python = subprocess.run([sys.executable, "-c", "import sys; print(sys.executable)"], capture_output=True,
                            text=True).stdout.strip()
    # The database in memory-backed /dev/shm where there is one: disk flushes
    # would add their noise to what is a CPU-bound workload.
    db_dir = tempfile.mkdtemp(prefix="gm-bench-", dir="/dev/shm") if os.path.isdir("/dev/shm") else tmp
    db = os.path.join(db_dir, "bench.db")
    sqlite_cmd = ["sqlite3", db, "create table n(v); insert into n values(500000);",
                  ".read " + os.path.join(source, "tests/realapps/workloads/sqlite_inserts.sql")]

    # (label, wrapper argv, environment); the wrappers run the program themselves.
    agent = {"LD_PRELOAD": args.agent}
    configs = [("no agent", [], {}),
               ("gometrics, profiling off", [], dict(agent, GOMETRICS_PROFILE_RATE="0",
                                                     GOMETRICS_MUTEX_PROFILE_FRACTION="0")),
               ("gometrics (default: heap and mutex profiles on)", [], agent),
               ("gometrics, lazy publisher", [], dict(agent, GOMETRICS_PUBLISHER="lazy"))]
    if shutil.which("heaptrack"):
        configs.append(("heaptrack", ["heaptrack", "-o", os.path.join(tmp, "heaptrack")], {}))
    memusage = sorted(glob.glob("/usr/lib/*/libmemusage.so") + glob.glob("/usr/lib/libmemusage.so"))
    if memusage:
        configs.append(("glibc memusage", [], {"LD_PRELOAD": memusage[0]}))
    if shutil.which("ltrace"):
        # -x: a breakpoint on malloc and free themselves, so calls from
        # libraries (libpython, libsqlite3) are traced too, not only the
        # executable's own.
        configs.append(("ltrace", ["ltrace", "-f", "-x", "malloc+free", "-o", os.devnull], {}))

    clock = args.clock
    # (label, argv, extra environment, what to measure, argv under ltrace, time limit)
    workloads = [
        ("malloc+free, 1 thread (ns/pair)", [bench, "1", "2000000"], {}, "program", [bench, "1", "20000"], 600),
        ("malloc+free, 2 threads (ns/pair)", [bench, "2", "2000000"], {}, "program", [bench, "2", "20000"], 600),
        # Python as it runs (pymalloc serves small objects from its arenas),
        # and with every object through malloc: the worst case for a malloc tool.
        ("python3 alloc_heavy.py 100 (s)", [python, os.path.join(source, "tests/realapps/workloads/alloc_heavy.py"),
                                            "100"], {}, clock, None, 120),
        ("same, PYTHONMALLOC=malloc (s)", [python, os.path.join(source, "tests/realapps/workloads/alloc_heavy.py"),
                                           "100"], {"PYTHONMALLOC": "malloc"}, clock, None, 120),
        ("sqlite3, 500k inserts (s)", sqlite_cmd, {}, clock, None, 120),
    ]

    values = {}  # (config, workload) -> [value per round, or why there is none]
    for _ in range(args.runs):
        for w_label, argv, extra, what, ltrace_argv, limit in workloads:
            for c_label, wrapper, env_add in configs:
                if c_label == "ltrace" and ltrace_argv is None:
                    # Every malloc stops the process: the real workloads would
                    # take hours. Tried once, with a short limit.
                    if (c_label, w_label) in values:
                        continue
                    cmd, lim = wrapper + argv, 60
                else:
                    cmd, lim = wrapper + (ltrace_argv if c_label == "ltrace" else argv), limit
                if os.path.exists(db):
                    os.remove(db)
                env = dict(os.environ, **extra, **env_add)
                values.setdefault((c_label, w_label), []).append(run_once(cmd, env, lim, what))
                for f in glob.glob(os.path.join(tmp, "heaptrack*")):  # tens of MB a run
                    os.remove(f)
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(db_dir, ignore_errors=True)

    # The fastest run of each: on a shared machine the others carry the
    # neighbours' noise, which only ever adds time.
    def numbers(vs):
        return [v for v in vs if not isinstance(v, str)]

    def cell(c_label, w_label):
        vs = values.get((c_label, w_label), [])
        done = numbers(vs)
        if not done:
            return (vs[0] if vs else "not run"), None
        base = numbers(values[("no agent", w_label)])
        return min(done), (min(done) / min(base) if base else None)

    print(f"| configuration | {' | '.join(w[0] for w in workloads)} |")
    print("|---|" + "---|" * len(workloads))
    for c_label, _, _ in configs:
        cells = []
        for w in workloads:
            best, ratio = cell(c_label, w[0])
            if ratio is None:
                cells.append(best if isinstance(best, str) else f"{best:.3g}")
            else:
                cells.append(f"{best:,.4g} ({ratio:.3f}x)" if best < 1000 else f"{best:,.0f} ({ratio:,.0f}x)")
        print(f"| {c_label} | {' | '.join(cells)} |")
    print()
    # Added time per pair, against what gometrics adds (the targets:
    # heaptrack 50x and memusage 5x ours, on one thread).
    ours_label = "gometrics (default: heap and mutex profiles on)"
    for w in workloads[:2]:
        base, _ = cell("no agent", w[0])
        ours, _ = cell(ours_label, w[0])
        if isinstance(ours, str) or isinstance(base, str):
            continue
        added = ours - base
        parts = [f"gometrics adds {added:+.2f} ns"]
        for c_label, _, _ in configs[4:]:
            theirs, _ = cell(c_label, w[0])
            if not isinstance(theirs, str) and added > 0:
                parts.append(f"{c_label} {(theirs - base) / added:,.0f}x that")
        print(f"- {w[0].split(' (')[0]}: " + "; ".join(parts))
    print()


if __name__ == "__main__":
    main()
