"""Faults: a process killed with SIGKILL, /dev/shm unusable (read-only or
full), a segment its reader may not open, a reader killed mid-read, two
readers at once. The program always runs on; the CLI always gives one clear
line and an exit status, never a crash or a hang."""

import json
import os
import signal
import subprocess
import time
import unittest

import realapp
from realapp import gmtest

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def can_unshare():
    return os.geteuid() == 0 and subprocess.run(["unshare", "-m", "true"], capture_output=True,
                                                timeout=10).returncode == 0


class KilledProcess(realapp.RealAppTest):
    def test_sigkill_leaves_a_stale_segment_that_ps_skips_and_gc_removes(self):
        p = subprocess.Popen(["sleep", "30"], env=gmtest.agent_env())
        try:
            gmtest.wait_for_segment(p.pid)
            self.assertIn(f" {p.pid} ", gmtest.cli("ps").stdout)
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=30)
        path = f"/dev/shm/gometrics.{p.pid}"
        self.assertTrue(os.path.exists(path))
        self.assertNotIn(f" {p.pid} ", gmtest.cli("ps").stdout)
        cp = gmtest.cli("read", "--pid", p.pid, "/gc/heap/allocs:objects")
        self.assertEqual(cp.returncode, 1)
        self.assertEqual(len(cp.stderr.splitlines()), 1, cp.stderr)
        cp = gmtest.cli("gc")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertRegex(cp.stdout, r"^removed \d+ stale segments?\n$")
        self.assertFalse(os.path.exists(path))


@unittest.skipUnless(can_unshare(), "needs root and mount namespaces (unshare -m) to replace /dev/shm")
class NoSharedMemory(realapp.RealAppTest):
    """The program runs in a private mount namespace whose /dev/shm is a
    read-only or a full tmpfs: the agent says so once, the program runs and
    its allocations are still counted (GOMETRICS_REPORT)."""

    def run_without_shm(self, setup, cmd):
        d = self.tempdir()
        report = os.path.join(d, "report.json")
        env = {k: v for k, v in gmtest.agent_env({"GOMETRICS_REPORT": report}).items() if k != "LD_PRELOAD"}
        # unshare and sh run without the agent; only the program gets it
        cp = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", f'{setup} && exec "$@"', "sh",
                             "env", f"LD_PRELOAD={gmtest.AGENT}", *cmd],
                            env=env, capture_output=True, text=True, timeout=60)
        return cp, report

    def check(self, setup):
        n = 1000
        cp, report = self.run_without_shm(setup, [gmtest.program("leak"), str(n)])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        lines = [line for line in cp.stderr.splitlines() if line.startswith("gometrics:")]
        self.assertEqual(len(lines), 1, cp.stderr)
        self.assertIn("/dev/shm", lines[0])
        with open(report) as f:
            m = gmtest.metrics(json.load(f))
        self.assertGreaterEqual(m["/gc/heap/objects:objects"], n)
        self.assert_sane(m, min_allocs=n)

    def test_read_only_dev_shm(self):
        self.check("mount -t tmpfs -o ro,size=64k none /dev/shm")

    def test_full_dev_shm(self):
        self.check("mount -t tmpfs -o size=64k none /dev/shm && (cat /dev/zero > /dev/shm/fill 2>/dev/null; true)")

    def test_forked_child_says_nothing_more(self):
        code = ("import os\npid=os.fork()\nif pid==0:\n    x=[str(i) for i in range(1000)]\n    os._exit(0)\n"
                "os.waitpid(pid,0)\nprint('parent done')\n")
        cp, _ = self.run_without_shm("mount -t tmpfs -o ro,size=64k none /dev/shm",
                                     [realapp.need("python3"), "-c", code])
        self.assertEqual((cp.returncode, cp.stdout), (0, "parent done\n"), cp.stderr)
        self.assertEqual(cp.stderr.count("gometrics:"), 1, cp.stderr)


def cli_runs_as_nobody():
    return os.geteuid() == 0 and subprocess.run([*NOBODY, gmtest.CLI, "--help"], capture_output=True,
                                                timeout=30).returncode == 0


class Readers(realapp.RealAppTest):
    @unittest.skipUnless(cli_runs_as_nobody(), "needs root, and a build directory that user nobody may enter")
    def test_unreadable_segment(self):
        """Segments are 0600: another user gets one clear line, and ps does not list the process."""
        with gmtest.Spawned([gmtest.program("churn"), "1", "20"]) as p:
            cp = subprocess.run([*NOBODY, gmtest.CLI, "read", "--pid", str(p.pid), "/gc/heap/allocs:objects"],
                                capture_output=True, text=True, timeout=30)
            self.assertEqual(cp.returncode, 1, cp.stderr)
            self.assertEqual(len(cp.stderr.splitlines()), 1, cp.stderr)
            self.assertIn("ermission", cp.stderr)
            ps = subprocess.run([*NOBODY, gmtest.CLI, "ps"], capture_output=True, text=True, timeout=30)
            self.assertEqual(ps.returncode, 0, ps.stderr)
            self.assertNotIn(f" {p.pid} ", ps.stdout)

    def test_reader_killed_mid_read(self):
        with gmtest.Spawned([gmtest.program("churn"), "2", "30"], {"GOMETRICS_INTERVAL_MS": "10"}) as p:
            for _ in range(3):
                r = subprocess.Popen([gmtest.program("coherence_reader"), str(p.pid), "20"], stdout=subprocess.DEVNULL)
                time.sleep(0.3)
                r.send_signal(signal.SIGKILL)
                r.wait(timeout=30)
            # nothing a reader holds survives it: the next reader and the CLI work, the program runs on
            cp = subprocess.run([gmtest.program("coherence_reader"), str(p.pid), "1"], capture_output=True,
                                text=True, timeout=60)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertGreater(int(cp.stdout.split()[0]), 10)
            self.assertIsNone(p.poll())
            self.assertGreater(gmtest.dump(p.pid)["/gc/heap/allocs:objects"], 0)

    def test_two_readers_at_once(self):
        with gmtest.Spawned([gmtest.program("churn"), "2", "30"], {"GOMETRICS_INTERVAL_MS": "10"}) as p:
            readers = [subprocess.Popen([gmtest.program("coherence_reader"), str(p.pid), "1.5"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
            for r in readers:
                out, err = r.communicate(timeout=60)
                self.assertEqual(r.returncode, 0, err)
                self.assertGreater(int(out.split()[0]), 10)


if __name__ == "__main__":
    realapp.main()
