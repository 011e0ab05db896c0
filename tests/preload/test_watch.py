"""`gometrics-cli watch`: a table redrawn in a real terminal (tmux), and lines in a pipe."""

import os
import re
import shutil
import subprocess
import time
import unittest

import gmtest
from gmtest import CLI, program

ALLOCS = "/gc/heap/allocs:bytes"


class Tmux:
    """A private tmux server (its own socket, so it inherits this environment) with one pane."""

    def __init__(self, command):
        self.socket = f"gometrics-test-{os.getpid()}-{time.monotonic_ns()}"
        self.run("new-session", "-d", "-x", "200", "-y", "50", command)

    def run(self, *args):
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10,
                              check=True)

    def capture(self):
        return self.run("capture-pane", "-p").stdout

    def wait_for(self, text, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.capture()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not on screen after {timeout}s:\n{self.capture()}")

    def close(self):
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


def row(screen, name):
    """The NOW column of a metric's row (columns are separated by two spaces or more)."""
    for line in screen.splitlines():
        if line.startswith(name + " "):
            return re.split(r"\s{2,}", line.strip())[1]
    raise AssertionError(f"no row for {name}:\n{screen}")


@unittest.skipIf(shutil.which("tmux") is None, "tmux is not installed (scripts/setup.sh test installs it)")
class WatchInATerminal(unittest.TestCase):
    def test_table_redraws_with_a_rate_that_changes_and_ends_when_the_process_exits(self):
        with gmtest.Spawned([program("grow"), "4", "8"]) as p:
            tmux = Tmux(f"{CLI} watch --pid {p.pid} --interval 0.5; echo watch-status=$?; sleep 60")
            try:
                first = tmux.wait_for("MiB/s")
                self.assertIn(f"pid {p.pid}", first)
                self.assertIn("Ctrl-C", first)
                rate1 = row(first, ALLOCS)
                self.assertRegex(row(first, "/gc/heap/live:bytes"), r"^\d+(\.\d+)? [KM]iB$")
                time.sleep(1.6)  # grow's rate steps up every second
                second = tmux.capture()
                rate2 = row(second, ALLOCS)
                self.assertRegex(rate1, r"^\d+(\.\d+)? [KM]iB/s$")
                self.assertRegex(rate2, r"^\d+(\.\d+)? MiB/s$")
                self.assertNotEqual(rate1, rate2)
                # Redrawn in place: the header is on screen once, not scrolled copies.
                self.assertEqual(second.count("METRIC"), 1)
                end = tmux.wait_for("watch-status=", timeout=20)
                self.assertIn(f"gometrics-cli watch: process {p.pid} exited", end)
                self.assertIn("watch-status=0", end)
            finally:
                tmux.close()

    def test_ctrl_c_ends_cleanly(self):
        with gmtest.Spawned(["sleep", "30"]) as p:
            tmux = Tmux(f"{CLI} watch --pid {p.pid} --interval 0.3; echo watch-status=$?; sleep 60")
            try:
                tmux.wait_for("METRIC")
                tmux.run("send-keys", "C-c")
                end = tmux.wait_for("watch-status=")
                self.assertIn("gometrics-cli watch: stopped", end)
                self.assertIn("watch-status=0", end)
            finally:
                tmux.close()


class WatchInAPipe(unittest.TestCase):
    def test_one_line_per_interval_until_the_process_exits(self):
        with gmtest.Spawned([program("grow"), "2", "8"]) as p:
            cp = subprocess.run([CLI, "watch", "--pid", str(p.pid), "--interval", "0.3", ALLOCS,
                                 "/gc/heap/live:bytes", "/gc/heap/allocs-by-size:bytes"],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        lines = cp.stdout.splitlines()
        self.assertNotIn("\x1b", cp.stdout)
        self.assertEqual(lines[-1], f"gometrics-cli watch: process {p.pid} exited")
        body = lines[:-1]
        self.assertGreaterEqual(len(body), 3, cp.stdout)
        pattern = re.compile(r"^\d\d:\d\d:\d\d /gc/heap/allocs:bytes=(\S+) /gc/heap/live:bytes=(\S+) "
                             r"/gc/heap/allocs-by-size:bytes=(\S+)$")
        rates = []
        for line in body:
            m = pattern.match(line)
            self.assertIsNotNone(m, line)
            rates.append(m.group(1))
        self.assertEqual(rates[0], "-")  # no rate before a second snapshot
        self.assertTrue(any(r.endswith("MiB/s") for r in rates[1:]), rates)
        # malloc(1024) has 1032 usable bytes: the windowed percentiles sit in the bucket holding it.
        hists = [pattern.match(line).group(3) for line in body[1:]]
        self.assertTrue(any(re.fullmatch(r"p50:1(\.\d+)?KiB,p90:1(\.\d+)?KiB,p99:1(\.\d+)?KiB", h) for h in hists),
                        hists)

    def test_count_and_unknown_names(self):
        with gmtest.Spawned(["sleep", "10"]) as p:
            cp = subprocess.run([CLI, "watch", "--pid", str(p.pid), "--interval", "0.1", "--count", "2"],
                                capture_output=True, text=True, timeout=30)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertEqual(len(cp.stdout.splitlines()), 3)
            # By default everything that moves, settings and limits (aggregation "none") left out.
            first = cp.stdout.splitlines()[0]
            self.assertIn(" /gc/heap/allocs:bytes=", first)
            self.assertIn(" /process/memory/rss:bytes=", first)
            self.assertNotIn("/memory/limit:bytes", first)
            self.assertNotIn("/process/fds/limit:fds", first)
            self.assertNotIn("/sched/gomaxprocs:threads", first)
            bad = subprocess.run([CLI, "watch", "--pid", str(p.pid), "/no/such:bytes"], capture_output=True,
                                 text=True, timeout=30)
            self.assertEqual(bad.returncode, 3)
            self.assertIn("/no/such:bytes", bad.stderr)


if __name__ == "__main__":
    gmtest.main()
