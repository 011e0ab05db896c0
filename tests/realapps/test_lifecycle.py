"""The malloc and lifecycle traps of preload agents not covered by a program of
their own (jemalloc orders: test_jemalloc; RTLD_DEEPBIND: test_dlopen;
fork: test_fork_threads; signals: test_signals)."""

import contextlib
import os
import subprocess

import realapp
from realapp import app, gmtest, need, run_plain  # noqa: F401

import re
import time


@contextlib.contextmanager
def killed_if_left(p):
    """Whatever the block does, p does not outlive it."""
    try:
        yield
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=30)


class Lifecycle(realapp.RealAppTest):
    def assert_ended_cleanly(self, p, err):
        """Exit status 0, nothing on stderr, and the segment removed at exit."""
        self.assertEqual((p.returncode, err), (0, ""))
        self.assertFalse(os.path.exists(f"/dev/shm/gometrics.{p.pid}"))

    def test_ldd_under_the_agent(self):
        """`LD_PRELOAD=libgometrics.so ldd /bin/bash` (ld.so in trace mode, no main)."""
        cp = subprocess.run(["ldd", "/bin/bash"], env=gmtest.agent_env(), capture_output=True, text=True, timeout=30)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(cp.stderr, "")
        self.assertIn(os.path.basename(gmtest.AGENT), cp.stdout)
        self.assertRegex(cp.stdout, r"libc\.so\.6 => \S+")
        plain = run_plain(["ldd", "/bin/bash"]).stdout
        strip = lambda s: sorted(re.sub(r"\(0x[0-9a-f]+\)", "", line).strip() for line in s.splitlines()
                                 if os.path.basename(gmtest.AGENT) not in line)
        # the agent's own dependencies (libstdc++ and its kin) join the list
        self.assertLessEqual(set(strip(plain)), set(strip(cp.stdout)))

    def test_no_gometrics_variables(self):
        """defaults only; the segment is there while it runs and gone after."""
        env = realapp.plain_env()
        env.update(LD_PRELOAD=gmtest.AGENT, PYTHONMALLOC="malloc")  # every object through malloc
        code = "import sys,time\nx=[str(i) for i in range(100000)]\nprint(len(x),flush=True)\nsys.stdin.read()\n"
        p = subprocess.Popen([need("python3"), "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        with killed_if_left(p):
            self.assertEqual(p.stdout.readline(), "100000\n")
            gmtest.wait_for_segment(p.pid)
            # published by the default interval (1 s) at the latest
            deadline = time.monotonic() + 20
            while gmtest.dump(p.pid)["/gc/heap/allocs:objects"] < 100000:
                self.assertLess(time.monotonic(), deadline, "the list's allocations were never published")
                time.sleep(0.1)
            _, err = p.communicate("", timeout=30)
        self.assert_ended_cleanly(p, err)

    def test_last_snapshot_only_for_a_reader_that_asked(self):
        """At exit, a process takes its last snapshot (and says so with the
        exited bit) when a reader asked for one: a process nobody read exits
        without reading /proc again."""
        import mmap
        for asked in (True, False):
            with self.subTest(asked=asked):
                code = "import sys\nprint('ready', flush=True)\nsys.stdin.readline()\nx = [str(i) for i in range(1000)]\n"
                p = subprocess.Popen([gmtest.PYTHON, "-c", code], env=gmtest.agent_env({"PATH": gmtest.SYSTEM_PATH}),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                with killed_if_left(p):
                    self.assertEqual(p.stdout.readline(), "ready\n")
                    gmtest.wait_for_segment(p.pid)
                    with open(f"/dev/shm/gometrics.{p.pid}", "r+b") as f:
                        seg = mmap.mmap(f.fileno(), 0)
                    seq = gmtest.header(seg, "seq")
                    self.assertFalse(gmtest.header(seg, "state") & gmtest.STATE_EXITED)
                    if asked:  # as RequestFresh does; the program answers at its next allocations
                        gmtest.set_header(seg, "request", gmtest.header(seg, "request") + 1)
                    _, err = p.communicate("go\n", timeout=30)
                self.assert_ended_cleanly(p, err)
                final_seq, final_state = gmtest.header(seg, "seq"), gmtest.header(seg, "state")
                seg.close()
                self.assertEqual(bool(final_state & gmtest.STATE_EXITED), asked)
                self.assertEqual(final_seq > seq, asked)

    def test_a_segment_that_stays_gets_its_last_snapshot(self):
        """A program that becomes another user without the right to give it
        its segment (no CAP_CHOWN) cannot remove it from the sticky /dev/shm at
        exit: the segment stays, so it gets the last snapshot and the exited
        bit, though no reader asked."""
        import shutil
        setpriv = shutil.which("setpriv")
        self.assertIsNotNone(setpriv, "setpriv (util-linux) is needed")
        code = "import os\nos.setgid(65534)\nos.setuid(65534)\nprint(os.getpid(), flush=True)\n"
        cp = subprocess.run([setpriv, "--inh-caps=-chown", "--bounding-set=-chown", gmtest.PYTHON, "-c", code],
                            env=gmtest.agent_env({"PATH": gmtest.SYSTEM_PATH}), capture_output=True, text=True,
                            timeout=60)
        segment = f"/dev/shm/gometrics.{cp.stdout.strip()}"
        try:
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertIn("cannot give the segment to the program's new user", cp.stderr)
            state = gmtest.header(gmtest.read_header(cp.stdout.strip()), "state")
            self.assertTrue(state & gmtest.STATE_EXITED, "no final snapshot in the segment left behind")
        finally:
            if os.path.exists(segment):
                os.unlink(segment)

    def test_constructors_before_ours_allocate(self):
        """ls allocates in other libraries' constructors before the agent's runs."""
        cmd = ["ls", "-la", "/"]
        cp, m = self.run_app(cmd)
        strip = lambda s: [line for line in s.splitlines() if not line.startswith("total")]
        self.assertEqual(len(strip(cp.stdout)), len(strip(run_plain(cmd).stdout)))
        self.assert_sane(m, min_allocs=3)

    def test_pointers_the_agent_never_saw(self):
        """free, realloc and malloc_usable_size of blocks allocated past the agent."""
        cp, rep = gmtest.run_with_report([app("foreign_pointers"), "2000"])
        self.assertEqual((cp.stdout, cp.stderr), ("foreign=2000 ok\n", ""))
        m = gmtest.metrics(rep)
        # each round: three frees of unseen blocks; the realloc's new block is ours
        self.assertGreaterEqual(m["/gc/heap/frees:objects"], 3 * 2000)
        for name in ("/gc/heap/objects:objects", "/gc/heap/live:bytes"):
            self.assertLess(m[name], realapp.HUGE, name)

    def assert_not_interposed(self, cmd, stdout, preload=None):
        cp, rep = gmtest.run_with_report(cmd, preload=preload)
        self.assertEqual(cp.stdout, stdout)
        self.assertEqual(cp.stderr.count("gometrics:"), 1, cp.stderr)
        self.assertIn("malloc is not interposed", cp.stderr)
        # unsupported, never zero: the heap metrics are left out
        self.assertFalse([name for name in gmtest.metrics(rep) if name.startswith("/gc/heap/")])

    def test_statically_linked_allocator(self):
        """an executable with its own malloc (jemalloc linked statically) says "not interposed"."""
        self.assertTrue(os.path.exists(app("allocator_probe_static")), "libjemalloc.a missing at build time")
        self.assert_not_interposed([app("allocator_probe_static"), "100"], "allocator=other\nblocks=100\n")

    def test_agent_loaded_by_dlopen(self):
        """dlopen'd late, the agent loads (small initial-exec TLS) and attaches itself, as `gometrics-cli
        attach` has it do: the program's calls count from then on, its output unchanged."""
        code = (f"import ctypes\nctypes.CDLL({gmtest.AGENT!r})\n"
                "kept = [bytearray(4096) for _ in range(1000)]\nprint('loaded')\n")
        cp, rep = gmtest.run_with_report([need("python3"), "-c", code], preload="")
        self.assertEqual((cp.stdout, cp.stderr), ("loaded\n", ""))
        self.assertGreaterEqual(gmtest.metrics(rep)["/gc/heap/allocs:objects"], 1000)


if __name__ == "__main__":
    realapp.main()
