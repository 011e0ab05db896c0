"""The agent stays out of the program's way: no descriptor of ours where the
program can see it, nothing a confined program forbids, the program's own
limits, small stacks, valgrind, chroot and setuid, and nothing lost when it
crashes (agent: sys/kept_file.h, crash.h)."""

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import gmtest  # noqa: E402
from gmtest import metrics, program  # noqa: E402

INVISIBLE = program("invisible")
FAST = {"GOMETRICS_INTERVAL_MS": "10", "GOMETRICS_PUBLISHER": "thread"}


def run(args, extra_env=None, shell_prefix=None, timeout=120):
    cmd = [INVISIBLE, *map(str, args)]
    if shell_prefix:
        cmd = ["sh", "-c", shell_prefix + ' && exec "$@"', "sh", *cmd]
    return subprocess.run(cmd, env=gmtest.agent_env(extra_env), capture_output=True, text=True, timeout=timeout)


class Descriptors(unittest.TestCase):
    def test_a_program_that_closes_ours_never_receives_our_bytes(self):
        with tempfile.TemporaryDirectory() as d:
            own, trace = os.path.join(d, "own.txt"), os.path.join(d, "trace.txt")
            cp = run(["closefds", own], dict(FAST, GOMETRICS_TRACE=trace))
            self.assertEqual((cp.returncode, cp.stdout), (0, "done\n"), cp.stderr)
            with open(own) as f:
                text = f.read()
            self.assertGreater(len(text), 0)
            self.assertEqual(set(text.splitlines()), {"mine"})
            # the trace said why it stopped, once
            self.assertEqual(cp.stderr.count("GOMETRICS_TRACE file was closed by the program"), 1, cp.stderr)

    def test_kept_descriptors_are_high_and_close_on_exec(self):
        with gmtest.Spawned([program("resources"), "0", "1", "1"], FAST) as p:
            self.assertEqual(p.stdout.readline(), "ready\n")
            ours = gmtest.agent_fds(p.pid)
            self.assertTrue(ours, "the agent keeps its /proc files open")
            for fd in ours:
                self.assertGreaterEqual(fd, 976)
                with open(f"/proc/{p.pid}/fdinfo/{fd}") as f:
                    flags = int(next(l for l in f if l.startswith("flags:")).split()[1], 8)
                self.assertTrue(flags & 0o2000000, f"fd {fd} lacks O_CLOEXEC")

    def test_close_1_then_dup_always_gets_1_while_a_reader_polls(self):
        p = subprocess.Popen([INVISIBLE, "dup1", "3000"], env=gmtest.agent_env(FAST), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        gmtest.wait_for_segment(p.pid)
        reads = 0
        while p.poll() is None:
            gmtest.cli("read", "--pid", p.pid, "/gc/heap/allocs:objects")
            reads += 1
        err = p.stderr.read()
        self.assertEqual(p.returncode, 0, err)
        self.assertIn(" surprised=0\n", err)
        self.assertGreater(reads, 5)

    def test_a_million_opens_under_ulimit_n_4(self):
        cp = run(["openloop", 1000000], FAST, shell_prefix="ulimit -n 4")
        self.assertEqual((cp.returncode, cp.stdout), (0, "failures=0\ndone\n"), cp.stderr)


class Confinement(unittest.TestCase):
    def test_a_program_that_forbids_open_to_itself_runs_to_its_end(self):
        cp = run(["seccomp"], FAST)
        self.assertEqual((cp.returncode, cp.stdout), (0, "done\n"), cp.stderr)

    @unittest.skipUnless(os.geteuid() == 0, "chroot and setuid need root (CI runs as root)")
    def test_chroot_and_setuid_still_write_the_report(self):
        with tempfile.TemporaryDirectory() as d:
            os.chmod(d, 0o1777)  # where nobody, the program's user after setuid, may write
            empty = os.path.join(d, "root")
            os.mkdir(empty)
            report = os.path.join(d, "r.json")
            p = subprocess.Popen([INVISIBLE, "confine", empty], env=gmtest.agent_env({"GOMETRICS_REPORT": report}),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out, err = p.communicate(timeout=60)
            self.assertEqual((p.returncode, out), (0, "done\n"), err)
            self.assertNotIn("gometrics:", err)
            with open(report) as f:
                m = metrics(json.load(f))
            self.assertGreaterEqual(m["/gc/heap/allocs:objects"], 1000)


class Limits(unittest.TestCase):
    def test_a_24_kib_main_stack(self):
        # At 16 KiB the dynamic loader itself runs out of stack now and then
        # while it maps any preloaded library (a one-line one as well), before
        # any code of ours runs; 24 KiB is enough for it and must be for us.
        for _ in range(10):
            cp = run(["openloop", 10], FAST, shell_prefix="ulimit -s 24")
            self.assertEqual((cp.returncode, cp.stdout), (0, "failures=0\ndone\n"), cp.stderr)

    def test_fork_from_a_thread_with_a_16_kib_stack(self):
        cp = run(["smallfork"], FAST)
        self.assertEqual((cp.returncode, cp.stdout), (0, "child=0\ndone\n"), cp.stderr)

    def test_valgrind_reports_nothing_of_ours(self):
        cp = subprocess.run(["valgrind", "-q", "--error-exitcode=9", INVISIBLE, "openloop", "10"],
                            env=gmtest.agent_env(), capture_output=True, text=True, timeout=300)
        self.assertEqual((cp.returncode, cp.stdout), (0, "failures=0\ndone\n"), cp.stderr)
        # valgrind serves every malloc itself: the agent says so instead of counting zeros
        self.assertIn("malloc is not interposed (valgrind", cp.stderr)


class Crashes(unittest.TestCase):
    N = 5000

    def crash(self, mode, n, core=False):
        """Runs `invisible crash MODE n` with a report; (wait status, report metrics or None)."""
        with tempfile.TemporaryDirectory() as d:
            report = os.path.join(d, "r.json")
            env = gmtest.agent_env({"GOMETRICS_REPORT": report})
            pid = os.fork()
            if pid == 0:
                try:
                    os.chdir(d)
                    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,) * 2 if core else (0, 0))
                    fd = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(fd, 1)
                    os.dup2(fd, 2)
                    os.execve(INVISIBLE, [INVISIBLE, "crash", mode, str(n)], env)
                finally:
                    os._exit(127)
            _, status = os.waitpid(pid, 0)
            rep = None
            if os.path.exists(report) and os.path.getsize(report):
                with open(report) as f:
                    rep = metrics(json.load(f))
            return status, rep

    def assert_exact(self, mode, sig):
        status, m = self.crash(mode, self.N)
        _, twin = self.crash(mode, 0)
        self.assertTrue(os.WIFSIGNALED(status) and os.WTERMSIG(status) == sig, status)
        self.assertIsNotNone(m, "no report after the crash")
        self.assertEqual(m["/gc/heap/allocs:objects"] - twin["/gc/heap/allocs:objects"], self.N)
        self.assertEqual(m["/gc/heap/objects:objects"] - twin["/gc/heap/objects:objects"], self.N)

    def test_exact_report_after_sigsegv(self):
        self.assert_exact("segv", signal.SIGSEGV)

    def test_exact_report_after_abort(self):
        self.assert_exact("abort", signal.SIGABRT)

    def test_exact_report_after_a_sigsegv_sent(self):
        self.assert_exact("kill", signal.SIGSEGV)

    def test_a_core_is_still_dumped(self):
        status, _ = self.crash("segv", 10, core=True)
        self.assertTrue(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSEGV, status)
        self.assertTrue(os.WCOREDUMP(status), "the kernel dumped no core")

    def test_the_programs_own_handler_still_runs(self):
        cp = run(["crash", "own", 100])
        self.assertEqual((cp.returncode, cp.stdout), (42, "own handler\n"), cp.stderr)

    def test_exec_report_after_a_crash(self):
        with tempfile.TemporaryDirectory() as d:
            report = os.path.join(d, "r.json")
            cp = gmtest.cli("exec", "--report", report, "--", INVISIBLE, "crash", "segv", self.N, timeout=60)
            self.assertNotEqual(cp.returncode, 0)
            with open(report) as f:
                doc = json.load(f)
            text = json.dumps(doc)
            self.assertIn("exit-report", text)


if __name__ == "__main__":
    gmtest.main()
