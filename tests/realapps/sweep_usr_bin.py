#!/usr/bin/env python3
"""Every ELF executable in /usr/bin run with --version, without and with the
agent: the same exit status and standard output, and no crash.

Each program runs twice without the agent first; one whose runs differ (it
prints a time, a pid, or its subprocesses' lines in either order: a
difference under the agent is checked by running both sides again), that
waits (it wants a terminal or input: stdin is /dev/null, there is no
controlling terminal, and a timeout ends it), or that dies of a signal on its
own is left out. Every run gets a fresh
empty working and home directory, so that a program that takes --version
for a file name or writes its settings touches nothing else. Prints how many
programs it tried, left out, found the same, different and crashed; exits 1
if any differed, crashed or hung under the agent.
    sweep_usr_bin.py [--agent LIBGOMETRICS] [--jobs N] [--timeout S] [--only NAME]... [-v]
"""

import argparse
import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

BIN = "/usr/bin"
# Programs that do not honour --version and act on the system instead; a
# timeout would end them, but not undo what they did.
DENY = {
    "login": "takes --version for a user name: waits for a password and records a failed login",
    "luit": "starts a shell on a new terminal, in a session of its own",
    "grab_vcsa": "hands /dev/vcsa* to the calling user (Free Pascal's helper)",
}
# Variables that would let a program reach the desktop or a user's agent
# (xkill kills the window one clicks; D-Bus autolaunch starts a daemon).
UNSET = ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "SSH_AUTH_SOCK", "GPG_AGENT_INFO", "XAUTHORITY")
MAX_OUTPUT = 1 << 20
# Runs again after a difference, to tell timing from the agent.
PLAIN_RETRIES, AGENT_RETRIES = 8, 4
# Process groups of the runs in flight: killed if the sweep itself is
# stopped (meson's timeout sends SIGTERM), so nothing outlives it.
RUNNING = set()


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def deny_reason(name):
    """Why name is denied (versioned names too: grab_vcsa-3.2.2), or None."""
    return DENY.get(name) or DENY.get(name.split("-")[0])


def candidates(only):
    """Names in /usr/bin whose target is an executable ELF file, and those denied."""
    names, denied = [], []
    for name in sorted(os.listdir(BIN)):
        if only and name not in only:
            continue
        path = os.path.join(BIN, name)
        if not (os.path.isfile(path) and os.access(path, os.X_OK) and is_elf(path)):
            continue
        (denied if deny_reason(name) else names).append(name)
    return names, denied


class Run:
    """One run's outcome: status (exit code, -signal, or None on timeout), stdout, stderr's tail."""

    def __init__(self, status, stdout, stderr, seconds):
        self.status, self.stdout, self.stderr, self.seconds = status, stdout, stderr, seconds

    def key(self):
        return self.status, self.stdout


def run_once(name, env, workdir, timeout):
    """Runs `name --version` in a fresh workdir, in a session of its own (no
    controlling terminal), output to files (a daemon that keeps a pipe open
    cannot block us); on timeout the whole process group is killed."""
    shutil.rmtree(workdir, ignore_errors=True)
    os.mkdir(workdir)
    env = dict(env, HOME=workdir)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        try:
            p = subprocess.Popen([os.path.join(BIN, name), "--version"], stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=err, cwd=workdir, env=env, start_new_session=True)
        except OSError as e:
            return Run(f"cannot start: {e}", b"", b"", 0.0)
        RUNNING.add(p.pid)
        try:
            status = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            status = None
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the program's children too, whether it ended or not
        except ProcessLookupError:
            pass
        if status is None:
            p.wait()
        RUNNING.discard(p.pid)
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return Run(status, out.read(MAX_OUTPUT), err.read(MAX_OUTPUT)[-2000:], seconds)


def sweep_one(name, plain_env, agent_env, workroot, timeout):
    """(category, detail) for one program."""
    workdir = os.path.join(workroot, name)
    try:
        first = run_once(name, plain_env, workdir, timeout)
        if first.status is None:
            return "waits", f"no exit within {timeout}s"
        if isinstance(first.status, int) and first.status < 0:
            return "crashes-alone", f"signal {-first.status} without the agent"
        second = run_once(name, plain_env, workdir, timeout)
        if second.key() != first.key():
            return "unstable", "two runs without the agent differ"
        # a slower machine or the agent's start-up must not look like a hang
        agent = run_once(name, agent_env, workdir, max(3 * timeout, 10 * first.seconds))
        if agent.status is None:
            return "hung", f"no exit under the agent (without it: {first.seconds:.2f}s)"
        if isinstance(agent.status, int) and agent.status < 0:
            return "crashed", f"signal {-agent.status} under the agent: {agent.stderr.decode(errors='replace')}"
        if agent.key() != first.key():
            # Output that depends on timing (groff --version: its troff and
            # grops write in either order) must not pass for a difference:
            # it is one only if the program never varies alone and never
            # matches under the agent.
            agent_timeout = max(3 * timeout, 10 * first.seconds)
            for _ in range(PLAIN_RETRIES):
                if run_once(name, plain_env, workdir, timeout).key() != first.key():
                    return "unstable", "runs without the agent differ (on a retry after a difference)"
            for _ in range(AGENT_RETRIES):
                if run_once(name, agent_env, workdir, agent_timeout).key() == first.key():
                    return "unstable", "a retry under the agent matched: the output depends on timing"
            if agent.status != first.status:
                return "different", f"exit status {first.status} without the agent, {agent.status} with it"
            return "different", first_difference(first.stdout, agent.stdout)
        return "same", "gometrics: on stderr" if b"gometrics:" in agent.stderr else ""
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def first_difference(plain, agent):
    """The first line of standard output that differs, for the log."""
    a, b = plain.splitlines(), agent.splitlines()
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"stdout line {i + 1}: {x[:200]!r} without the agent, {y[:200]!r} with it"
    return f"stdout has {len(a)} lines without the agent, {len(b)} with it"


def left_running(token):
    """Pids of processes that carry this sweep's token in their environment:
    daemons a program started in a session of their own."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if token in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def stop(signum, _frame):
    for pgid in list(RUNNING):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os._exit(128 + signum)


def main():
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", default=os.environ.get("GOMETRICS_AGENT"), help="path of libgometrics.so")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds for a run without the agent")
    ap.add_argument("--only", action="append", help="sweep only this name (repeatable)")
    ap.add_argument("-v", "--verbose", action="store_true", help="list every program left out")
    args = ap.parse_args()
    if not args.agent or not os.path.isfile(args.agent):
        print(f"sweep: no agent library at {args.agent!r} (--agent or GOMETRICS_AGENT)", file=sys.stderr)
        return 2

    token = f"GOMETRICS_SWEEP_TOKEN={uuid.uuid4().hex}"
    plain_env = {k: v for k, v in os.environ.items()
                 if k != "LD_PRELOAD" and not k.startswith("GOMETRICS_") and k not in UNSET}
    plain_env[token.split("=")[0]] = token.split("=")[1]
    agent_env = dict(plain_env, LD_PRELOAD=os.path.abspath(args.agent))

    names, denied = candidates(set(args.only or ()))
    results = {}
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gometrics-sweep-") as workroot, \
            concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(sweep_one, n, plain_env, agent_env, workroot, args.timeout): n for n in names}
        for f in concurrent.futures.as_completed(futures):
            results[futures[f]] = f.result()
    strays = left_running(token.encode())
    for pid in strays:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    by = {}
    for name, (category, detail) in sorted(results.items()):
        by.setdefault(category, []).append((name, detail))
    failed = by.get("different", []) + by.get("crashed", []) + by.get("hung", [])
    for category in ("different", "crashed", "hung"):
        for name, detail in by.get(category, []):
            print(f"sweep: {category}: {name}: {detail}")
    if args.verbose:
        for category in ("unstable", "waits", "crashes-alone"):
            for name, detail in by.get(category, []):
                print(f"sweep: left out ({category}): {name}: {detail}")
        for name in denied:
            print(f"sweep: denied: {name}: {deny_reason(name)}")
    noted = [n for n, d in by.get("same", []) if d]
    if noted:
        print(f"sweep: the agent wrote a gometrics: line for {len(noted)}: {' '.join(noted)}")
    if strays:
        print(f"sweep: killed {len(strays)} process(es) left running by the programs")
    left_out = sum(len(by.get(c, [])) for c in ("unstable", "waits", "crashes-alone"))
    print(f"sweep: tried {len(names)}, left out {left_out} (unstable {len(by.get('unstable', []))}, "
          f"waits {len(by.get('waits', []))}, crash without the agent {len(by.get('crashes-alone', []))}), "
          f"same {len(by.get('same', []))}, different {len(by.get('different', []))}, "
          f"crashed {len(by.get('crashed', [])) + len(by.get('hung', []))} "
          f"(hung {len(by.get('hung', []))}); denied {len(denied)}; {time.monotonic() - start:.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
