"""Helpers for the real-program suite (tests/realapps): run a real program
under the agent with a report, check its output, and sanity-check what the
agent saw. Built on gmtest; every call is bounded in time."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import gmtest  # noqa: F401  (re-exported for the tests)
from gmtest import metrics

REALAPPS = os.environ.get("GOMETRICS_REALAPPS", "")
CATALOG = os.environ.get("GOMETRICS_CATALOG", "")
HUGE = 1 << 62  # no count of a test run comes near: above it, a counter wrapped


def app(name):
    """Path of a program built from tests/realapps/programs."""
    return os.path.join(REALAPPS, name)


def plain_env():
    """The environment without the agent and without GOMETRICS_* variables."""
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("GOMETRICS_")}


def run_plain(cmd, timeout=60, **kw):
    """Runs cmd without the agent: the reference output."""
    cp = subprocess.run(cmd, env=plain_env(), timeout=timeout, capture_output=True, text=True, **kw)
    if cp.returncode != 0:
        raise AssertionError(f"{cmd} failed without the agent ({cp.returncode}): {cp.stderr[-2000:]}")
    return cp


def catalog_names():
    """Names of every metric the agent declares (from gometrics-catalog)."""
    out = subprocess.run([CATALOG, "--format", "tsv"], capture_output=True, text=True, timeout=30, check=True).stdout
    return {line.split("\t")[0] for line in out.splitlines() if line}


def need(tool):
    """Path of the system's tool (/usr/bin, as Debian installs it; never
    another one first on PATH) the test cannot run without; a missing one
    fails the test (scripts/setup.sh test installs them all)."""
    path = shutil.which(tool, path=gmtest.SYSTEM_PATH)
    if not path:
        raise AssertionError(f"{tool} is not installed in /usr/bin: run scripts/setup.sh test")
    return path


def free_port():
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(test, env):
    """redis-server on a free loopback port, in a temporary directory, with
    no persistence, started with `env` and answering: (proc, port, cli)."""
    server, cli = need("redis-server"), need("redis-cli")
    port = str(free_port())
    d = test.tempdir()
    proc = subprocess.Popen([server, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", d, "--protected-mode", "no", "--daemonize", "no"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while redis_cli(cli, port, "ping") != "PONG":
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            raise AssertionError(f"redis-server did not answer: {proc.stderr.read()}")
        time.sleep(0.05)
    return proc, port, cli


def redis_cli(cli, port, *args):
    """redis-cli without the agent; its output stripped ("" when it fails)."""
    cp = subprocess.run([cli, "-h", "127.0.0.1", "-p", port, *args], capture_output=True, text=True, timeout=10,
                        env=plain_env())
    return cp.stdout.strip() if cp.returncode == 0 else ""


class RealAppTest(unittest.TestCase):
    """Base class: run() under the agent and the sanity checks on reports."""

    maxDiff = None

    def run_app(self, cmd, timeout=60, extra_env=None, **kw):
        """Runs cmd under the agent with GOMETRICS_REPORT: (completed, metrics).
        The program must exit 0 and write nothing about the agent on stderr."""
        cp, rep = gmtest.run_with_report(cmd, extra_env=extra_env, timeout=timeout, **kw)
        self.assertNotIn("gometrics:", cp.stderr, f"the agent complained running {cmd}")
        self.assertIsNotNone(rep, f"no report written by {cmd}")
        return cp, metrics(rep)

    def assert_sane(self, m, min_allocs=1, min_threads=None):
        """What every report of a real program must show: allocations seen,
        frees not above allocations, histograms summing to their totals, no
        wrapped counter. Families merged later (threads) are checked when the
        agent declares them."""
        allocs, frees = m["/gc/heap/allocs:objects"], m["/gc/heap/frees:objects"]
        self.assertGreaterEqual(allocs, min_allocs)
        self.assertLessEqual(frees, allocs)
        self.assertEqual(sum(m["/gc/heap/allocs-by-size:bytes"]["counts"]), allocs)
        self.assertEqual(sum(m["/gc/heap/frees-by-size:bytes"]["counts"]), frees)
        self.assertEqual(m["/gc/heap/objects:objects"], allocs - frees)
        self.assertEqual(m["/gc/heap/live:bytes"], m["/gc/heap/allocs:bytes"] - m["/gc/heap/frees:bytes"])
        self.assertGreater(m["/gc/heap/allocs:bytes"], 0)
        for name, v in m.items():
            if "limit:" in name:
                continue  # a limit's "none" is MaxInt64, Go's gomemlimit convention
            if isinstance(v, int):
                self.assertLess(v, HUGE, name)
        if min_threads is not None and "/sched/threads-created:threads" in catalog_names():
            self.assertGreaterEqual(m["/sched/threads-created:threads"], min_threads)

    def tempdir(self):
        d = tempfile.TemporaryDirectory(prefix="gometrics-realapp-")
        self.addCleanup(d.cleanup)
        return d.name


def main():
    unittest.main(verbosity=2)
