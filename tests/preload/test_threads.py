"""Thread metrics under the agent: live and created counts, stacks."""

import os
import resource
import subprocess
import time
import unittest

import gmtest
from gmtest import program


def default_stack():
    """glibc's default thread stack: RLIMIT_STACK's soft limit, 8 MiB when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
    return 8 << 20 if soft == resource.RLIM_INFINITY else soft


def eventually(fn, timeout=5.0):
    """fn() until it returns without raising, within timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Threads(unittest.TestCase):
    def test_100_started_50_live_then_joined(self):
        with gmtest.Spawned([program("threads")]) as p:
            self.assertEqual(p.stdout.readline(), "live\n")
            m = gmtest.dump(p.pid)
            self.assertGreaterEqual(m["/sched/threads-created:threads"], 100)
            self.assertEqual(m["/sched/threads/total:threads"], 51)
            d = default_stack()
            # 24 asked for 256 KiB, one brought its own stack, 25 + main take the default.
            self.assertEqual(m["/memory/classes/os-stacks:bytes"], 24 * 256 * 1024 + 26 * d)

            p.stdin.write("join\n")
            p.stdin.flush()
            self.assertEqual(p.stdout.readline(), "joined\n")

            def after_join():
                m = gmtest.dump(p.pid)
                self.assertEqual(m["/sched/threads/total:threads"], 1)
                self.assertEqual(m["/sched/threads-created:threads"], 100)
                self.assertEqual(m["/memory/classes/os-stacks:bytes"], d)
            # A joined thread can stay in the kernel's count for a moment.
            eventually(after_join)
            p.stdin.write("exit\n")
            p.stdin.flush()
            self.assertEqual(p.wait(timeout=30), 0)

    def test_publisher_thread_is_not_counted(self):
        with gmtest.Spawned(["sleep", "5"], {"GOMETRICS_PUBLISHER": "thread"}) as p:
            self.assertEqual(len(os.listdir(f"/proc/{p.pid}/task")), 2)  # sleep's main thread + the publisher
            self.assertEqual(gmtest.dump(p.pid)["/sched/threads/total:threads"], 1)

    def test_publisher_thread_starts_while_a_reader_is_answered(self):
        """A single-threaded program answers a reader on its own thread; its
        first thread meanwhile starts ours, which used to take that
        snapshot under way for a crash handler's and end for good. Nothing
        refreshed the process again: private slots' counts and /proc
        figures stayed as they were (forked children read allocations
        short). The old agent lost its thread in about a quarter of these
        children."""
        rounds = 40
        cp = subprocess.run([program("first_thread"), str(gmtest.HEADER["request"][0]), str(rounds)],
                            env=gmtest.agent_env(), capture_output=True, text=True, timeout=120)
        self.assertEqual((cp.returncode, cp.stderr), (0, ""))
        self.assertEqual(cp.stdout, f"rounds={rounds} without=0\n")

    def test_a_thread_cancelled_at_once_comes_back_from_its_first_malloc(self):
        """malloc is no cancellation point, and the agent must not make it
        one: a thread's first malloc claims its slot, which reads /proc with
        pread. The old agent let the cancel act there, 1 thread in 200 (the
        first to claim while cancelled), and kept the claim's flag held."""
        for _ in range(3):
            cp = subprocess.run([program("cancelled"), "200"], env=gmtest.agent_env(), capture_output=True,
                                text=True, timeout=60)
            self.assertEqual((cp.returncode, cp.stderr), (0, ""))
            self.assertEqual(cp.stdout, "cancelled=200 returned=200\n")

    def test_forked_child_counts_only_its_own_thread(self):
        code = ("import os,sys,threading,time\n"
                "ev=threading.Event(); t=threading.Thread(target=ev.wait); t.start()\n"
                "r,w=os.pipe()\n"
                "pid=os.fork()\n"
                "if pid==0:\n"
                "    x=[bytearray(64) for _ in range(100)]\n"
                "    os.write(w,b'x'); time.sleep(3); os._exit(0)\n"
                "os.read(r,1); print(pid, flush=True); os.waitpid(pid,0); ev.set(); t.join()\n")
        p = subprocess.Popen([gmtest.PYTHON, "-c", code], env=gmtest.agent_env(), stdout=subprocess.PIPE, text=True)
        try:
            child = int(p.stdout.readline())
            gmtest.wait_for_segment(child)
            m = gmtest.dump(child)
            self.assertEqual(m["/sched/threads/total:threads"], 1)
            self.assertGreaterEqual(m["/sched/threads-created:threads"], 1)  # the parent's history is kept
            self.assertEqual(m["/memory/classes/os-stacks:bytes"], default_stack())  # its main thread only
            parent = gmtest.dump(p.pid)
            self.assertEqual(parent["/sched/threads/total:threads"], 2)
        finally:
            p.wait(timeout=30)

    def test_report_at_exit(self):
        _, rep = gmtest.run_with_report([program("threads")], input="\n\n")
        m = gmtest.metrics(rep)
        self.assertEqual(m["/sched/threads-created:threads"], 100)
        self.assertEqual(m["/sched/threads/total:threads"], 1)


if __name__ == "__main__":
    gmtest.main()
