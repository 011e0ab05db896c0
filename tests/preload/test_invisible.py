"""The agent stays out of the program's way: no descriptor of ours where the
program can see it, nothing a confined program forbids, the program's own
limits, small stacks, valgrind, chroot and setuid, and nothing lost when it
crashes (agent: sys/kept_file.h, crash.h)."""

import json
import mmap
import os
import resource
import signal
import struct
import subprocess
import tempfile
import time
import unittest

import gmtest
from gmtest import metrics, program

INVISIBLE = program("invisible")
FAST = {"GOMETRICS_INTERVAL_MS": "10", "GOMETRICS_PUBLISHER": "thread"}


def metrics_of(exec_report):
    """{name: value} of an `exec --report` document."""
    return {m["name"]: m["value"] for m in exec_report["metrics"]}


def run(args, extra_env=None, shell_prefix=None, timeout=120):
    cmd = [INVISIBLE, *map(str, args)]
    if shell_prefix:
        cmd = ["sh", "-c", shell_prefix + ' && exec "$@"', "sh", *cmd]
    return subprocess.run(cmd, env=gmtest.agent_env(extra_env), capture_output=True, text=True, timeout=timeout)


class Descriptors(unittest.TestCase):
    def closefds(self, publisher):
        """Runs `invisible closefds` under a trace file; (stderr, the program's file, the trace)."""
        with tempfile.TemporaryDirectory() as d:
            own, trace = os.path.join(d, "own.txt"), os.path.join(d, "trace.txt")
            cp = run(["closefds", own], dict(FAST, GOMETRICS_TRACE=trace, GOMETRICS_PUBLISHER=publisher))
            self.assertEqual((cp.returncode, cp.stdout), (0, "done\n"), cp.stderr)
            with open(own) as f, open(trace) as g:
                return cp.stderr, f.read(), g.read()

    def test_a_program_that_closes_ours_never_receives_our_bytes(self):
        # The agent's thread writes through a descriptor table of its own:
        # the program's closefrom (its first act) does not reach it, and the
        # trace goes on for the half second the program runs, a line per 10 ms.
        err, own, trace = self.closefds("thread")
        self.assertGreater(len(own), 0)
        self.assertEqual(set(own.splitlines()), {"mine"})
        self.assertGreater(len(trace.splitlines()), 20, err)
        # Written from the program's own thread: the trace stops, saying why once.
        err, own, trace = self.closefds("lazy")
        self.assertEqual(set(own.splitlines()), {"mine"})
        self.assertNotIn(" exit: live", trace)
        self.assertEqual(err.count("GOMETRICS_TRACE file was closed by the program"), 1, err)

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
        self.dup1_while_a_reader_polls(0)

    def test_close_1_then_dup_always_gets_1_beside_threads_of_the_program(self):
        # The agent's thread then reads every thread's scheduler file, which
        # it opens: in a descriptor table of its own, never in the program's.
        self.dup1_while_a_reader_polls(4)

    def test_a_program_that_hands_its_stderr_over_lets_it_reach_eof(self):
        # The agent's thread holds none of the program's descriptors, stderr
        # included: the reader of a pipe the program let go sees EOF at once.
        p = subprocess.Popen([INVISIBLE, "handoff", "3000"], env=gmtest.agent_env(FAST), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        t0 = time.monotonic()
        p.stderr.read()
        eof_after = time.monotonic() - t0
        self.assertIsNone(p.poll(), "the program ended before its stderr did")
        self.assertLess(eof_after, 2.0)
        p.wait(timeout=30)

    def dup1_while_a_reader_polls(self, threads):
        p = subprocess.Popen([INVISIBLE, "dup1", "3000", str(threads)], env=gmtest.agent_env(FAST),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
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


    def test_a_program_that_closes_every_other_descriptor_still_profiles(self):
        """A daemon closes what it did not open, then allocates: the profile's
        pages, reserved at the first sample, need none of our descriptors."""
        code = ("import os, sys\nos.closerange(3, 1 << 16)\nx = [bytearray(4096) for _ in range(5000)]\n"
                "print('ready', flush=True)\nsys.stdin.read()\n")
        p = subprocess.Popen(["/usr/bin/python3", "-c", code], env=gmtest.agent_env(), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.assertEqual(p.stdout.readline(), "ready\n")
            cp = gmtest.cli("profile", "heap", "--pid", p.pid, "--format", "text")
        finally:
            out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        # 20 MB of bytearrays: about 40 samples, in a handful of stacks.
        self.assertRegex(cp.stdout.split("\n")[0], r"^inuse_space: total [0-9.]+ MiB in [1-9][0-9]* stacks", cp.stderr)
        self.assertNotIn("profile", err)

    def test_heap_samples_take_no_descriptor_of_the_programs(self):
        # The unwinder the samples used before kept a pipe at the lowest free
        # numbers, and read and wrote those numbers after the program had
        # closed them and opened its own files there: the program's first
        # open got 5, its input lost bytes and its output got the pipe's.
        with tempfile.TemporaryDirectory() as d:
            source = os.path.join(d, "in.txt")
            with open(source, "w") as f:
                f.write("hello world\n")
            outputs = []
            for env in (None, {}):
                out = os.path.join(d, f"out{len(outputs)}.txt")
                args = [INVISIBLE, "daemon", source, out]
                cp = (subprocess.run(args, capture_output=True, text=True, timeout=60) if env is None
                      else run(["daemon", source, out], {"GOMETRICS_PROFILE_RATE": "4096"}))
                self.assertEqual(cp.returncode, 0, cp.stderr)
                with open(out) as f:
                    outputs.append((cp.stdout, f.read()))
        self.assertEqual(outputs[0], ("first 3, in 3, out 4, read 12: hello world\ndone\n", "hello world\n"))
        self.assertEqual(outputs[1], outputs[0])

    def test_a_sample_in_a_handler_on_a_small_alternate_stack(self):
        # SIGSTKSZ, 8 KiB: the sample's stack must fit beside the handler's
        # malloc, and no lazy binding may run there (it saves every register).
        cp = run(["altstack"], {"GOMETRICS_PROFILE_RATE": "4096"})
        self.assertEqual((cp.returncode, cp.stdout), (0, "done\n"), cp.stderr)


class NoThreadOfOurs(unittest.TestCase):
    """A program without threads of its own sees none of ours."""

    def test_proc_self_task_has_one_entry(self):
        cp = run(["tasks"])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(cp.stdout.split(), [cp.stdout.split()[0], "done"])

    def test_unshare_a_user_namespace(self):
        plain = subprocess.run(["unshare", "-U", "true"], capture_output=True, text=True, timeout=30)
        if plain.returncode != 0:
            self.skipTest(f"no user namespaces here even without the agent (a chroot): {plain.stderr.strip()}")
        cp = subprocess.run(["unshare", "-U", "true"], env=gmtest.agent_env(), capture_output=True, text=True,
                            timeout=30)
        self.assertEqual((cp.returncode, cp.stderr), (0, ""))

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run the program as another user (CI runs as root)")
    def test_rlimit_nproc_that_the_program_fits_in(self):
        # As a user of its own (RLIMIT_NPROC counts every task of the user,
        # and other tests run programs as nobody meanwhile), with room for
        # the program's main thread and its one thread: ours must not take
        # it, and fails quietly once the program has its own.
        with tempfile.TemporaryDirectory() as d:
            os.chmod(d, 0o755)
            exe = os.path.join(d, "invisible")
            subprocess.run(["cp", INVISIBLE, exe], check=True)
            os.chmod(exe, 0o755)
            agent = os.path.join(d, "libgometrics.so")
            subprocess.run(["cp", gmtest.AGENT, agent], check=True)
            os.chmod(agent, 0o755)
            cmd = ["setpriv", "--reuid=61234", "--regid=61234", "--clear-groups", "prlimit", "--nproc=2", exe,
                   "threads", "1"]
            plain = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            self.assertEqual(plain.stdout, "child=0\ndone\n", plain.stderr)
            cp = subprocess.run(cmd, env=gmtest.agent_env(preload=agent), capture_output=True, text=True, timeout=60)
            self.assertEqual((cp.returncode, cp.stdout), (0, "child=0\ndone\n"), cp.stderr)

    def test_a_first_thread_cancelled_at_once_still_runs_its_routine(self):
        # The publisher thread starts from the program's first thread, before
        # its routine: a pending cancel must not act in there.
        for _ in range(10):
            cp = subprocess.run([INVISIBLE, "cancelfirst"], env=gmtest.agent_env(), capture_output=True, text=True,
                                timeout=60)
            self.assertEqual((cp.returncode, cp.stdout), (0, "join got 42\n"), cp.stderr)

    def test_the_publisher_is_not_pinned_with_the_thread_that_starts_it(self):
        # Started from a worker pinned to one CPU, ours gets the main
        # thread's CPUs: pinned beside a busy worker it would never run.
        cpus = os.sched_getaffinity(0)
        self.assertGreater(len(cpus), 1, "needs two CPUs to pin a worker apart")
        p = subprocess.Popen([INVISIBLE, "pinned"], env=gmtest.agent_env(), stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(p.stdout.readline(), "ready\n")
            ours = None
            deadline = time.monotonic() + 5
            while ours is None and time.monotonic() < deadline:
                for tid in os.listdir(f"/proc/{p.pid}/task"):
                    with open(f"/proc/{p.pid}/task/{tid}/comm") as f:
                        if f.read().strip() == "gometrics":
                            ours = int(tid)
                time.sleep(0.02)
            self.assertIsNotNone(ours, "no publisher thread")
            self.assertEqual(os.sched_getaffinity(ours), os.sched_getaffinity(p.pid))
            self.assertEqual(os.sched_getaffinity(p.pid), cpus)
        finally:
            p.communicate(timeout=30)
        self.assertEqual(p.returncode, 0)

    def test_reads_of_a_program_blocked_in_read_are_exact(self):
        # No thread, and a ten-minute interval: the reader folds the counts itself.
        env = {"GOMETRICS_INTERVAL_MS": "600000"}
        p = subprocess.Popen([INVISIBLE, "blockread", "3000"], env=gmtest.agent_env(env), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(p.stdout.readline(), "ready\n")
            first = gmtest.dump(p.pid)
            p.stdin.write("x")
            p.stdin.flush()
            self.assertEqual(p.stdout.readline(), "ready\n")
            second = gmtest.dump(p.pid)
            for name in ("/gc/heap/allocs:objects", "/gc/heap/objects:objects"):
                self.assertEqual(second[name] - first[name], 3000, name)
            self.assertEqual(second["/gc/heap/live:bytes"] - first["/gc/heap/live:bytes"], 3000 * 104)
            with open(f"/proc/{p.pid}/status") as f:
                self.assertIn("Threads:\t1\n", f.read())
        finally:
            p.kill()
            p.communicate(timeout=30)

    def test_tar_200_times_each_way(self):
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "src")
            os.mkdir(src)
            for i in range(20):
                with open(os.path.join(src, f"f{i}"), "w") as f:
                    f.write("gometrics " * (100 * i + 1))
            failures = []
            # xz's smallest dictionary: its default 94 MiB, which glibc fills
            # byte by byte under meson's MALLOC_PERTURB_, took 0.3 s a run.
            env = gmtest.agent_env({"XZ_OPT": "-0"})
            for flag, suffix in (("czf", "tgz"), ("cJf", "txz")):
                for i in range(200):
                    cp = subprocess.run(["tar", flag, os.path.join(d, f"a.{suffix}"), "-C", d, "src"],
                                        env=env, capture_output=True, text=True, timeout=60)
                    if cp.returncode or cp.stderr:
                        failures.append((flag, i, cp.returncode, cp.stderr))
            self.assertEqual(failures, [])


class Confinement(unittest.TestCase):
    def test_a_program_that_forbids_open_to_itself_runs_to_its_end(self):
        cp = run(["seccomp"], FAST)
        self.assertEqual((cp.returncode, cp.stdout), (0, "done\n"), cp.stderr)

    def test_a_filter_the_program_started_under_is_not_its_own_confinement(self):
        # A container's or a service manager's filter: the agent's start-up
        # calls passed it, so trace and profile stacks stay on.
        with tempfile.TemporaryDirectory() as d:
            trace = os.path.join(d, "trace.txt")
            cp = run(["contained", INVISIBLE, "threads", "4"], dict(FAST, GOMETRICS_TRACE=trace))
            self.assertEqual((cp.returncode, cp.stdout), (0, "child=0\ndone\n"), cp.stderr)
            self.assertNotIn("confined itself", cp.stderr)
            with open(trace) as f:
                self.assertIn(" exit: live", f.read())

    def test_a_program_on_a_strict_allowlist_runs_to_its_end(self):
        # Every thread, the publisher's too, may only read and write, wait on
        # futexes, read clocks, map memory and exit; anything else kills.
        for _ in range(5):
            cp = run(["strict"], dict(FAST, GOMETRICS_TRACE="1"))
            self.assertEqual((cp.returncode, cp.stdout), (0, "done\n"), cp.stderr)
            self.assertIn("exit: live", cp.stderr)  # the final trace line, written after the filter

    def test_a_filter_that_kills_fallocate_before_anything_is_reserved(self):
        """The profile's records and each thread's slot get their tmpfs pages
        when first used (fallocate for a slot). A filter that kills fallocate, installed
        before the first allocation: through libc's syscall() the agent sees it
        coming and reserves the profile first; by a raw system call it finds it
        in status, counts privately and leaves the profile out, saying so once.
        Neither kills the program."""
        for how in ("libc", "raw"):
            with self.subTest(how=how):
                p = subprocess.Popen([INVISIBLE, "nofallocate", how], env=gmtest.agent_env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                try:
                    self.assertEqual(p.stdout.readline(), "ready\n", p.stderr.read() if p.poll() is not None else "")
                    first = gmtest.cli("profile", "heap", "--pid", p.pid, "--format", "text").stdout.split("\n")[0]
                finally:
                    out, err = p.communicate(timeout=60)
                self.assertEqual((p.returncode, out), (0, "done\n"), err)
                if how == "libc":
                    # 16 MiB in 4 KiB blocks: about 32 samples, all from one stack.
                    self.assertRegex(first, r"^inuse_space: total [0-9.]+ MiB in 1 stacks", err)
                    self.assertNotIn("gometrics:", err)
                else:
                    self.assertEqual(first, "inuse_space: total 0 B in 0 stacks, top 0")
                    self.assertEqual(err.count("gometrics:"), 1, err)
                    self.assertIn("confined itself before the first profile sample", err)

    @unittest.skipUnless(os.geteuid() == 0, "chroot and setuid need root (CI runs as root)")
    def test_chroot_and_setuid_still_write_the_report(self):
        self.chroot_and_setuid(0o1777)  # where nobody, the program's user after setuid, may write

    @unittest.skipUnless(os.geteuid() == 0, "chroot and setuid need root (CI runs as root)")
    def test_setuid_still_writes_the_report_where_only_root_may_create_files(self):
        self.chroot_and_setuid(0o755)

    def chroot_and_setuid(self, mode):
        with tempfile.TemporaryDirectory() as d:
            os.chmod(d, mode)
            empty = os.path.join(d, "root")
            os.mkdir(empty)
            report = os.path.join(d, "r.json")
            p = subprocess.Popen([INVISIBLE, "confine", empty], env=gmtest.agent_env({"GOMETRICS_REPORT": report}),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out, err = p.communicate(timeout=60)
            self.assertEqual((p.returncode, out), (0, "done\n"), err)
            self.assertNotIn("gometrics:", err)
            self.assertFalse(os.path.exists(f"/dev/shm/gometrics.{p.pid}"), "the segment outlived the program")
            with open(report) as f:
                m = metrics(json.load(f))
            self.assertGreaterEqual(m["/gc/heap/allocs:objects"], 1000)


class ScribbledSegment(unittest.TestCase):
    """The segment is a file the user's other processes can write: nothing
    the agent reads back from it (the fold terms, which exist nowhere else;
    the layout in its header) leads a store or a load astray."""

    # Threads of Debian's python3 allocating through malloc: shared slots in
    # use, so every snapshot folds their copies through the terms; each line
    # on stdin starts two more (new slots claimed), an empty one ends it.
    WORK = (
        "import sys, threading\n"
        "stop = threading.Event()\n"
        "def work():\n"
        "    i = 0\n"
        "    while not stop.is_set():\n"
        "        b = [bytearray(64 + i % 512) for _ in range(4)]\n"
        "        i += 1\n"
        "ts = []\n"
        "def more(n):\n"
        "    for _ in range(n):\n"
        "        ts.append(threading.Thread(target=work))\n"
        "        ts[-1].start()\n"
        "more(4)\n"
        "print('ready', flush=True)\n"
        "while sys.stdin.readline().strip():\n"
        "    more(2)\n"
        "    print('more', flush=True)\n"
        "stop.set()\n"
        "for t in ts: t.join()\n"
        "print('done', flush=True)\n")

    def scribbled(self, scribble):
        """Runs WORK, lets `scribble(segment, live_offset)` write over its
        segment, then reads it and starts threads: the program runs to its
        end, readers refuse the segment with one line, snapshots go on."""
        env = dict(FAST, PYTHONMALLOC="malloc", PATH=gmtest.SYSTEM_PATH)
        p = subprocess.Popen([gmtest.PYTHON, "-c", self.WORK], env=gmtest.agent_env(env), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.assertEqual(p.stdout.readline(), "ready\n")
            gmtest.wait_for_segment(p.pid)
            with open(f"/dev/shm/gometrics.{p.pid}", "r+b") as f:
                seg = mmap.mmap(f.fileno(), 0)
            pid, live = gmtest.header(seg, "pid"), gmtest.header(seg, "live_offset")
            self.assertEqual(pid, p.pid)
            self.assertEqual(live % 4096, 0)
            seq_before = gmtest.header(seg, "seq")
            scribble(seg, live)
            for _ in range(3):
                p.stdin.write("more\n")
                p.stdin.flush()
                self.assertEqual(p.stdout.readline(), "more\n")
            for _ in range(20):
                cp = gmtest.cli("read", "--pid", p.pid, "/gc/heap/allocs:objects")
                self.assertEqual(cp.returncode, 1, cp.stdout)
                self.assertEqual(len(cp.stderr.splitlines()), 1, cp.stderr)
                self.assertIn("corrupt segment", cp.stderr)
                time.sleep(0.02)
            seq_after = gmtest.header(seg, "seq")
            self.assertGreater(seq_after, seq_before, "the publisher stopped")
            seg.close()
            out, err = p.communicate("\n", timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate(timeout=30)
        self.assertEqual((p.returncode, out), (0, "done\n"), err)

    def test_fold_terms_overwritten_with_garbage(self):
        def scribble(seg, live):
            term_count, terms_offset = struct.unpack_from("<II", seg, live + 12)
            self.assertGreater(term_count, 1000)
            self.assertEqual(terms_offset, 32)
            # Every word out of range (value and slot words 0xffffffff).
            at = live + terms_offset
            seg[at:at + 24 * term_count] = b"\xff" * (24 * term_count)
        self.scribbled(scribble)

    def test_layout_in_the_header_overwritten(self):
        def scribble(seg, live):
            # The offsets of the values, the profile and the live region, and
            # the slots' place, size and number.
            for name in ("values_offset", "profile_offset", "live_offset"):
                gmtest.set_header(seg, name, 0x7ffffff0)
            struct.pack_into("<III", seg, live, 0xffffffff, 0x7fffffc0, 0x7fffffc0)
        self.scribbled(scribble)


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

    def test_a_child_of_fork_without_handlers_counts_apart(self):
        # _Fork runs no atfork handler: its child wrote its allocations into
        # its parent's slots, and waited at exit for its parent's publisher.
        n = 1000
        with tempfile.TemporaryDirectory() as d:
            report = os.path.join(d, "r.json")
            cp = gmtest.cli("exec", "--report", report, "--", INVISIBLE, "rawfork", n, timeout=60)
            self.assertEqual((cp.returncode, cp.stdout.splitlines()[0]), (0, "done"), cp.stderr)
            with open(report) as f:
                doc = json.load(f)
        by_pid = {p["pid"]: metrics_of(p) for p in doc["processes"]}
        self.assertEqual(len(by_pid), 2, doc["processes"])
        parent = by_pid.pop(doc["pid"])
        (child,) = by_pid.values()
        self.assertLess(parent["/gc/heap/allocs:objects"], 10)
        self.assertEqual(child["/gc/heap/objects:objects"] - parent["/gc/heap/objects:objects"], n)

    def test_children_forked_from_a_signal_handler_inside_malloc_run_on(self):
        # Each child resumes inside the hook the signal interrupted, holding
        # its parent's slot in a segment the child has let go of.
        cp = run(["sigfork", 300])  # the lazy publisher: a thread of ours would make glibc take locks here
        self.assertEqual((cp.returncode, cp.stdout), (0, "killed=0\ndone\n"), cp.stderr)

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

    def test_exec_report_is_exact_after_sigkill(self):
        # No handler can run: exec folds the dead process's counters from its segment.
        results = []
        with tempfile.TemporaryDirectory() as d:
            for n in (self.N, 0):
                report = os.path.join(d, f"r{n}.json")
                cp = gmtest.cli("exec", "--report", report, "--", INVISIBLE, "crash", "sigkill", n, timeout=60)
                self.assertEqual(cp.returncode, 137, cp.stderr)
                with open(report) as f:
                    results.append(json.load(f))
        (proc,) = results[0]["processes"]
        self.assertIn(proc["source"], ("segment", "last-poll"))
        m, twin = (metrics_of(r) for r in results)
        for name in ("/gc/heap/allocs:objects", "/gc/heap/objects:objects"):
            self.assertEqual(m[name] - twin[name], self.N, name)

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
