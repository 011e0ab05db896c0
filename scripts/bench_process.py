#!/usr/bin/env python3
"""What the agent costs a process that starts and exits, and the CLI's own
start-up: peak RSS of `/bin/echo hi`, 200 runs of `/bin/true` (wall and CPU
seconds), the address space and resident memory of an idle `sleep`, the
segment's size, the MiB a program gets under an RLIMIT_AS, and the wall and
CPU milliseconds and instructions of `gometrics-cli --help` and `read`. Runs with and without
the agent alternate; each figure is the median. Prints markdown tables.
The agent is given to the measured program only, never to GNU time or the
CLI.

    bench_process.py --agent LIB --build DIR [--runs N]

Called by scripts/bench.sh; benchmarks measure, they never assert."""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import time


def run(cmd, env, limit_as=None):
    """Runs cmd with its output captured; returns (stdout, wall s, CPU s, peak RSS KiB)."""
    def confine():
        resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))
    t0 = time.perf_counter()
    # Only a preexec_fn makes Python fork rather than vfork, and the forked
    # child's exec then tears down a copy of Python: 4 to 5 ms of CPU charged
    # to the measured program, more than /bin/true itself takes.
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         preexec_fn=confine if limit_as else None)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench_process: {' '.join(cmd)} failed ({status})")
    return out, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def stop_sleeper(p):
    p.terminate()  # SIGTERM skips the agent's exit path: remove its segment
    p.wait()
    try:
        os.unlink(f"/dev/shm/gometrics.{p.pid}")
    except FileNotFoundError:
        pass


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    base = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("GOMETRICS_")}
    envs = {"alone": base, "agent": dict(base, LD_PRELOAD=args.agent)}
    samples = {}  # (measure, config) -> [values]

    def add(measure, config, value):
        samples.setdefault((measure, config), []).append(value)

    as_program = os.path.join(args.build, "tests", "bench_address_space")
    for _ in range(args.runs):
        for config, env in envs.items():
            # GNU time's own fork: a child forked (or vforked) from this
            # Python starts with Python's RSS, which would be its peak.
            preload = ["LD_PRELOAD=" + env["LD_PRELOAD"]] if "LD_PRELOAD" in env else []
            out = run(["/usr/bin/time", "-f", "%M", "-o", "/dev/stdout", "env"] + preload + ["/bin/echo", "hi"], base)[0]
            add("rss", config, int(out.split()[-1]))
            t0, c0 = time.perf_counter(), os.times()
            for _ in range(200):
                run(["/bin/true"], env)
            c1 = os.times()
            add("true_wall", config, time.perf_counter() - t0)
            add("true_cpu", config, (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system))
            add("as", config, int(run([as_program], env, limit_as=200000 * 1024)[0].split()[-1]))
    # An idle process: its mappings once the agent has set up (the segment appears then). Several:
    # one whose few allocations drew a heap sample (at random, one per 512 KiB on average) maps the
    # profiler's tables, and one run alone would report that draw. The last agent's is read below.
    sleeper = None
    for _ in range(args.runs):
        for config, env in envs.items():
            p = subprocess.Popen(["sleep", "30"], env=env)
            segment = f"/dev/shm/gometrics.{p.pid}"
            deadline = time.monotonic() + 10
            while config == "agent" and not os.path.exists(segment) and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.2)
            add("vmsize", config, status_kib(p.pid, "VmSize"))
            add("vmrss", config, status_kib(p.pid, "VmRSS"))
            if config == "agent":
                st = os.stat(segment) if os.path.exists(segment) else None
                add("segment", config, st.st_size // 1024 if st else 0)
                add("segment_pages", config, st.st_blocks // 2 if st else 0)  # what /dev/shm holds of it
                if sleeper:
                    stop_sleeper(sleeper)
                sleeper = p
            else:
                p.kill()
                p.wait()
    cli = os.path.join(args.build, "cli", "gometrics-cli")
    metric = "/gc/heap/allocs:bytes"
    for _ in range(args.runs):
        for name, cmd in (("help", [cli, "--help"]), ("read", [cli, "read", "--pid", str(sleeper.pid), metric])):
            _, wall, cpu, _ = run(cmd, base)
            add(name + "_wall", "cli", wall * 1000)
            add(name + "_cpu", "cli", cpu * 1000)
    insns = {"help": "no valgrind", "read": "no valgrind"}
    for name, cmd in () if not shutil.which("valgrind") else (("help", [cli, "--help"]), ("read", [cli, "read", "--pid", str(sleeper.pid), metric])):
        cg = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + cmd, env=base,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        counts = [line.split()[-1] for line in cg.stderr.splitlines() if "Collected :" in line]
        insns[name] = f"{int(counts[-1]) / 1e6:.1f}" if cg.returncode == 0 and counts else "failed"
    stop_sleeper(sleeper)

    def med(measure, config):
        return statistics.median(samples[(measure, config)])

    print("| measure | no agent | with the agent | added | ratio |")
    print("|---|---|---|---|---|")
    for measure, label, fmt in (
            ("rss", "`/bin/echo hi`: peak RSS, KiB", "{:.0f}"),
            ("true_wall", "200 runs of `/bin/true`: wall s", "{:.3f}"),
            ("true_cpu", "200 runs of `/bin/true`: CPU s", "{:.3f}"),
            ("vmsize", "idle `sleep`: address space (VmSize), KiB", "{:.0f}"),
            ("vmrss", "idle `sleep`: resident (VmRSS), KiB", "{:.0f}"),
            ("as", "MiB malloc'd in 1 MiB blocks under `ulimit -v 200000`", "{:.0f}")):
        a, b = med(measure, "alone"), med(measure, "agent")
        print(f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {fmt.format(b - a)} | {b / a:.3f}x |")
    print()
    print(f"The segment of an idle `sleep`: {med('segment', 'agent'):.0f} KiB, of which "
          f"{med('segment_pages', 'agent'):.0f} KiB have pages in /dev/shm (the rest is reserved when used).")
    print()
    print("| `gometrics-cli` (no agent) | wall ms | CPU ms | M instructions (callgrind) |")
    print("|---|---|---|---|")
    print(f"| `--help` | {med('help_wall', 'cli'):.1f} | {med('help_cpu', 'cli'):.1f} | {insns['help']} |")
    print(f"| `read --pid P {metric}` | {med('read_wall', 'cli'):.1f} | {med('read_cpu', 'cli'):.1f} | {insns['read']} |")


if __name__ == "__main__":
    main()
