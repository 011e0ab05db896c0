"""Helpers for the integration suites: run programs under the agent, read
them with the real CLI, and load reports. Paths come from meson's test
environment (GOMETRICS_AGENT, GOMETRICS_CLI, GOMETRICS_PROGRAMS)."""

import json
import os
import struct
import subprocess
import tempfile
import time
import unittest

AGENT = os.environ.get("GOMETRICS_AGENT", "")
CLI = os.environ.get("GOMETRICS_CLI", "")
PROGRAMS = os.environ.get("GOMETRICS_PROGRAMS", "")
# Programs run under the agent are the system's, as users run them: PATH's
# python3 may be a build of its own (pyenv: PIE, shared libpython) that hides
# what Debian's non-PIE one does. The harness itself may run on any python3.
SYSTEM_PATH = "/usr/bin:/bin"
PYTHON = "/usr/bin/python3"


# The segment header's words the tests read or write: (offset, struct format),
# as ipc/layout.h's SegmentHeader lays them out, and its State bits.
HEADER = {
    "pid": (24, "<i"),
    "start_time_ns": (32, "<Q"),
    "values_offset": (72, "<I"),
    "seq": (88, "<I"),
    "request": (92, "<I"),
    "state": (96, "<I"),
    "profile_offset": (104, "<I"),
    "live_offset": (112, "<I"),
}
HEADER_SIZE = 128
STATE_EXITED = 1 << 2
STATE_ATTACHED = 1 << 4


def header(buf, name):
    """The header word `name` of a segment's bytes (or mapping)."""
    offset, fmt = HEADER[name]
    return struct.unpack_from(fmt, buf, offset)[0]


def set_header(buf, name, value):
    offset, fmt = HEADER[name]
    struct.pack_into(fmt, buf, offset, value)


def read_header(pid):
    """The first HEADER_SIZE bytes of pid's segment."""
    with open(f"/dev/shm/gometrics.{pid}", "rb") as f:
        return f.read(HEADER_SIZE)


def program(name):
    """Path of a test program built from tests/programs."""
    return os.path.join(PROGRAMS, name)


def agent_env(extra=None, preload=None):
    env = dict(os.environ)
    env["LD_PRELOAD"] = preload if preload is not None else AGENT
    env.update(extra or {})
    return env


def run_with_report(cmd, extra_env=None, timeout=120, check=True, preload=None, **kw):
    """Runs cmd under the agent with GOMETRICS_REPORT; returns (completed, report)."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "report.json")
        env = agent_env(dict(extra_env or {}, GOMETRICS_REPORT=path), preload)
        cp = subprocess.run(cmd, env=env, timeout=timeout, capture_output=True, text=True, **kw)
        if check and cp.returncode != 0:
            raise AssertionError(f"{cmd} exited {cp.returncode}: {cp.stderr[-2000:]}")
        report = None
        if os.path.exists(path):
            with open(path) as f:
                report = json.load(f)
        return cp, report


def metrics(report):
    """{name: value} from a dump/report JSON document."""
    return {m["name"]: m["value"] for m in report["metrics"]}


def agent_fds(pid):
    """The descriptors the agent keeps in process pid: at high numbers, on
    its own /proc files, cgroup files and /dev/shm (sys/kept_file.h)."""
    ours = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if int(name) >= 976 and (target.startswith(f"/proc/{pid}/") or target.startswith("/sys/fs/cgroup/")
                                 or target == "/dev/shm" or target.startswith(f"/dev/shm/gometrics.{pid}")):
            ours[int(name)] = target
    return ours


def program_fds(pid):
    """The descriptors of process pid that are the program's own."""
    return sorted(set(int(n) for n in os.listdir(f"/proc/{pid}/fd")) - set(agent_fds(pid)))


def cli(*args, timeout=30, check=False):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, check=check)


def dump(pid):
    cp = cli("dump", "--pid", pid, "--format", "json")
    if cp.returncode != 0:
        raise AssertionError(f"dump failed: {cp.stderr}")
    return metrics(json.loads(cp.stdout))


def wait_for_segment(pid, timeout=10.0):
    path = f"/dev/shm/gometrics.{pid}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and cli("list", "--pid", pid).returncode == 0:
            return
        time.sleep(0.02)
    raise AssertionError(f"no readable segment for pid {pid} after {timeout}s")


class Spawned:
    """A program started under the agent, killed at exit of the block."""

    def __init__(self, cmd, extra_env=None, preload=None, **kw):
        self.proc = subprocess.Popen(cmd, env=agent_env(extra_env, preload), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

    def __enter__(self):
        wait_for_segment(self.proc.pid)
        return self.proc

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=30)
        # Killed, it left its segment: a later process given its pid would
        # find it there.
        try:
            os.unlink(f"/dev/shm/gometrics.{self.proc.pid}")
        except FileNotFoundError:
            pass


def hist_total(h):
    return sum(h["counts"])


class _TimedResult(unittest.TextTestResult):
    """Says how long each test took, so a slow one shows in meson's log."""

    def startTest(self, test):
        self._started = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        self.stream.writeln(f"    {test.id()}: {time.monotonic() - self._started:.1f} s")
        self.stream.flush()


def main():
    unittest.main(verbosity=2, testRunner=unittest.TextTestRunner(resultclass=_TimedResult, verbosity=2))
