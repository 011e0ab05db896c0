"""gometrics-cli attach and detach on running programs that never saw
LD_PRELOAD: exact counts from the attach, blocks from before it freed after
it, a read() blocked at the attach that sees no EINTR, attach twice, detach
and attach again, fork, many cycles under 8 busy threads, an address-space
limit that leaves the map no room, and each refusal with the target
untouched. ptrace is required: run as root (CI, a fresh Debian root); a
machine that forbids it fails here, loudly."""

import contextlib
import ctypes
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import gmtest
from gmtest import cli, dump, program

HEAP = ["/gc/heap/allocs:objects", "/gc/heap/frees:objects", "/gc/heap/objects:objects", "/gc/heap/live:bytes"]
BEFORE = "/gc/heap/live-before-attach:bytes"
THREADS = "/sched/threads-created:threads"
JEMALLOC_LIB = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"


def plain_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("GOMETRICS_") and k != "LD_PRELOAD"}


def nobodys_copy(d, name):
    """A copy of the test program `name` in d (a temporary directory) that
    any user may run, for targets running as nobody."""
    os.chmod(d, 0o755)
    path = os.path.join(d, name)
    shutil.copy(program(name), path)
    os.chmod(path, 0o755)
    return path


class Running:
    """A program started without the agent, driven line by line on stdin."""

    def __init__(self, cmd, extra_env=None):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1, env=dict(plain_env(), **(extra_env or {})))
        self.out = []
        first = self.line()
        if not first.startswith("ready"):
            raise AssertionError(f"{cmd} did not start: {first!r} {self.proc.stderr.read()}")
        self.pid = self.proc.pid
        # It runs without the agent: a segment at its pid is one an earlier
        # process left when killed (pids come round: the suites kill many).
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"/dev/shm/gometrics.{self.pid}")

    def line(self):
        text = self.proc.stdout.readline()
        self.out.append(text)
        return text.strip()

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.line()

    def finish(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.append(self.proc.stdout.read())
        return "".join(self.out), self.proc.stderr.read(), self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def agent_loaded(pid):
    with open(f"/proc/{pid}/maps") as f:
        return "libgometrics.so" in f.read()


def header(pid):
    """(start_time_ns, state) of the segment of pid."""
    raw = gmtest.read_header(pid)
    return gmtest.header(raw, "start_time_ns"), gmtest.header(raw, "state")


def attach(pid):
    cp = cli("attach", pid, timeout=60)
    if cp.returncode != 0:
        raise AssertionError(f"attach {pid} failed ({cp.returncode}): {cp.stderr.strip()}")
    return cp.stdout


def detach(pid):
    cp = cli("detach", pid, timeout=60)
    if cp.returncode != 0:
        raise AssertionError(f"detach {pid} failed ({cp.returncode}): {cp.stderr.strip()}")
    return cp.stdout


def assert_work_counted(test, r):
    """r's "work" runs, and the attached agent counts its 1,030 allocations."""
    test.assertTrue(r.ask("work").startswith("worked"))
    test.assertGreaterEqual(heap(r.pid)[0][0], 1030)


def assert_detached(test, r):
    detach(r.pid)
    test.assertFalse(os.path.exists(f"/dev/shm/gometrics.{r.pid}"), "detach left the segment")


@contextlib.contextmanager
def ending_cleanly(test, r):
    """r, which must exit 0 with nothing on stderr once the block is done
    with it (finish closes its stdin)."""
    try:
        yield r
    finally:
        out, err, rc = r.finish()
    test.assertEqual((rc, err), (0, ""), out)


def heap(pid):
    """The heap counts, with live bytes those of the blocks since the attach
    (live bytes less the heap from before it), and every metric."""
    m = dump(pid)
    return [m[k] for k in HEAP[:3]] + [m[HEAP[3]] - m[BEFORE]], m


def allocs_profile(pid):
    cp = cli("profile", "allocs", "--pid", pid, "--format", "text", timeout=60)
    if cp.returncode != 0:
        raise AssertionError(f"profile allocs {pid} failed ({cp.returncode}): {cp.stderr.strip()}")
    return cp.stdout


def assert_memory_classes(test, m):
    """Every class is non-negative and the leaves add up to the total."""
    paths = {k.split(":")[0]: k for k in m if k.startswith("/memory/classes/")}
    leaves = [k for p, k in paths.items() if not any(q.startswith(p + "/") for q in paths) and
              p != "/memory/classes/total"]
    for k in leaves:
        test.assertGreaterEqual(m[k], 0, k)
    test.assertEqual(sum(m[k] for k in leaves), m["/memory/classes/total:bytes"])


def masked(out, pid):
    """The output without its pid and usable sizes: where realloc finds room
    depends on the heap's layout, which any loaded library changes."""
    return [line.split()[:1] for line in out.replace(str(pid), "PID").splitlines()]


def twin_output(commands):
    """The same program, never attached, given the same commands."""
    r = Running([program("attach_target")])
    for c in commands:
        r.ask(c)
    out, _, rc = r.finish()
    return masked(out, r.pid), rc


class Attach(unittest.TestCase):
    def test_counts_from_the_attach_are_exact_and_output_unchanged(self):
        commands = ["work", "work", "free", "quit"]
        r = Running([program("attach_target")])
        try:
            before = time.time_ns()
            # The program is blocked in read(): the attach borrows that thread,
            # and the read goes on as if nothing happened (no EINTR).
            self.assertIn(f"attached to process {r.pid}", attach(r.pid))
            self.assertTrue(agent_loaded(r.pid))
            start, state = header(r.pid)
            self.assertTrue(state & gmtest.STATE_ATTACHED, "the segment does not say it was attached")
            self.assertGreaterEqual(start, before)
            self.assertLessEqual(start, time.time_ns())
            values, m = heap(r.pid)
            self.assertEqual(values, [0, 0, 0, 0], "counts must start at the attach")
            self.assertAlmostEqual(m["/process/attached-at:seconds"], start / 1e9, delta=1e-6)

            worked = r.ask("work")
            live = int(worked.split()[1])
            values, m = heap(r.pid)
            # 1000 mallocs + 100 reallocs of old blocks + 10 callocs + 10
            # posix_memaligns + 10 large; 500 + 5 frees. The 200 frees of
            # blocks from before the attach count for nothing.
            self.assertEqual(values, [1130, 505, 625, live])
            self.assertEqual(m["/memory/classes/heap/objects:bytes"], live + m[BEFORE])
            assert_memory_classes(self, m)

            live = int(r.ask("work").split()[1])
            values, m = heap(r.pid)
            self.assertEqual(values, [2160, 1010, 1150, live])
            assert_memory_classes(self, m)

            self.assertEqual(r.ask("free"), "freed")
            values, m = heap(r.pid)
            self.assertEqual(values, [2160, 2160, 0, 0])
            assert_memory_classes(self, m)
            self.assertEqual(r.ask("quit"), "bye")
        finally:
            out, err, rc = r.finish()
        self.assertEqual(rc, 0, err)
        self.assertNotIn("EINTR", out)
        self.assertEqual(err, "")
        expected, twin_rc = twin_output(commands)
        self.assertEqual(masked(out, r.pid), expected)
        self.assertEqual(twin_rc, 0)
        self.assertFalse(os.path.exists(f"/dev/shm/gometrics.{r.pid}"), "the segment outlived the process")

    def test_sampled_blocks_grown_by_realloc_keep_their_bytes(self):
        # Every block sampled: a sampled block's realloc moves it through
        # the hooks' own malloc and free. Called through the agent's GOT, as
        # it first was, an attached agent reached libc's: the sample
        # outlived its block and a later block at its address took its size
        # (malloc_usable_size short of the request, bytes lost).
        r = Running([program("attach_target")], {"GOMETRICS_PROFILE_RATE": "1"})
        try:
            self.assertIn(f"attached to process {r.pid}", attach(r.pid))
            self.assertEqual(r.ask("grow"), "grew 0")
            values, m = heap(r.pid)
            self.assertEqual(values[2:], [0, 0])  # objects, live bytes: every block freed
            self.assertEqual(values[0], values[1])
            self.assertEqual(r.ask("quit"), "bye")
        finally:
            out, err, rc = r.finish()
        self.assertEqual(rc, 0, err)

    def test_no_room_for_the_map_is_said_once_and_changes_nothing(self):
        # The map of counted blocks takes a 32 MiB reservation for each
        # gigabyte of heap it meets first; an address-space limit set after
        # the attach leaves no room for the first one.
        commands = ["work", "work", "free", "quit"]
        r = Running([program("attach_target")])
        try:
            attach(r.pid)
            with open(f"/proc/{r.pid}/status") as f:
                vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
            resource.prlimit(r.pid, resource.RLIMIT_AS, (vm * 1024 + (16 << 20), resource.RLIM_INFINITY))
            for c in commands[:-1]:
                r.ask(c)
                assert_memory_classes(self, dump(r.pid))  # readers go on
            self.assertEqual(r.ask("quit"), "bye")
        finally:
            out, err, rc = r.finish()
        self.assertEqual(rc, 0, err)
        self.assertEqual(err.count("no memory to map which blocks were counted"), 1, err)
        self.assertEqual(len(err.splitlines()), 1, err)
        expected, _ = twin_output(commands)
        self.assertEqual(masked(out, r.pid), expected)

    def test_blocks_libc_allocates_are_counted(self):
        # strdup's malloc is libc's own call: its block, freed by the
        # program, is one of the attach's, not the heap from before.
        r = Running([program("attach_target"), "1000"])
        try:
            attach(r.pid)
            before = dump(r.pid)[BEFORE]
            self.assertEqual(r.ask("dup"), "duped")
            values, m = heap(r.pid)
            self.assertEqual(values, [100000, 100000, 0, 0])
            self.assertEqual(m[BEFORE], before)
        finally:
            r.kill()

    def test_a_handler_that_returned_leaves_no_live_frame(self):
        # python3 handles one SIGUSR1 while it sleeps, then blocks deeper in
        # C frames over the stack the handler's frame used: that stale frame
        # must not make the only thread look unsafe.
        # The handler writes to the descriptor: print() from a handler that
        # lands while the main code is still inside print('ready') raises
        # "reentrant call" on the buffered stdout and ends python.
        code = ("import os, signal, sys, time, json\n"
                "signal.signal(signal.SIGUSR1, lambda *a: os.write(1, b'handled\\n'))\n"
                "print('ready', flush=True)\n"
                "time.sleep(1.0)\n"
                "def deep(n):\n"
                "    if n == 0:\n"
                "        return sorted([3, 1, 2], key=lambda x: (sys.stdin.readline(), x)[1])\n"
                "    return json.loads(json.dumps([deep(n - 1)]))\n"
                "deep(30)\n")
        r = Running([gmtest.PYTHON, "-c", code])
        try:
            os.kill(r.pid, signal.SIGUSR1)
            line = r.line()
            if line != "handled":
                r.kill()
                self.fail(f"python3 did not handle SIGUSR1 ({line!r}, exit {r.proc.returncode}): "
                          f"{r.proc.stderr.read().strip()}")
            time.sleep(1.2)  # past the sleep, blocked in the deep readline
            self.assertIn(f"attached to process {r.pid}", attach(r.pid))
        finally:
            r.kill()

    def test_attach_twice_changes_nothing(self):
        r = Running([program("attach_target")])
        try:
            attach(r.pid)
            first = header(r.pid)
            with open(f"/proc/{r.pid}/maps") as f:
                maps = f.read()
            cp = cli("attach", r.pid)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertEqual(cp.stdout.strip(), f"process {r.pid} is already attached: nothing changed")
            self.assertEqual(header(r.pid), first)
            with open(f"/proc/{r.pid}/maps") as f:
                self.assertEqual(f.read().count("libgometrics.so"), maps.count("libgometrics.so"))
            self.assertTrue(r.ask("work").startswith("worked"))
            self.assertEqual(heap(r.pid)[0][0], 1130)
        finally:
            r.kill()

    def test_preloaded_process_is_left_alone(self):
        with gmtest.Spawned([program("attach_target")]) as proc:
            cp = cli("attach", proc.pid)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertIn("runs the agent already (LD_PRELOAD): nothing changed", cp.stdout)
            self.assertEqual(dump(proc.pid)["/process/attached-at:seconds"], 0)
            cp = cli("detach", proc.pid)
            self.assertEqual(cp.returncode, 1)
            self.assertIn("detach applies to attached processes", cp.stderr)
            self.assertTrue(os.path.exists(f"/dev/shm/gometrics.{proc.pid}"))

    def test_a_segment_left_by_an_earlier_process_of_the_same_pid(self):
        """A process killed with SIGKILL leaves its segment; a later process
        given the same pid is not instrumented for it: attach removes the
        stale segment and attaches."""
        with gmtest.Spawned([program("attach_target")]) as proc:
            with open(f"/dev/shm/gometrics.{proc.pid}", "rb") as f:
                left = bytearray(f.read())
        with ending_cleanly(self, Running([program("attach_target")])) as r:
            gmtest.set_header(left, "pid", r.pid)  # as if it had been this pid's
            with open(f"/dev/shm/gometrics.{r.pid}", "wb") as f:
                f.write(left)
            self.assertIn("attached to process", attach(r.pid))
            self.assertTrue(gmtest.header(gmtest.read_header(r.pid), "state") & gmtest.STATE_ATTACHED)
            assert_work_counted(self, r)
            assert_detached(self, r)
            self.assertEqual(r.ask("quit"), "bye")

    def test_detach_restores_and_the_program_goes_on(self):
        commands = ["work", "work", "free", "work", "quit"]
        r = Running([program("attach_target")])
        try:
            fds = sorted(os.listdir(f"/proc/{r.pid}/fd"))
            attach(r.pid)
            r.ask("work")
            self.assertIn(f"detached from process {r.pid}", detach(r.pid))
            self.assertFalse(os.path.exists(f"/dev/shm/gometrics.{r.pid}"), "detach left the segment")
            self.assertEqual(sorted(os.listdir(f"/proc/{r.pid}/fd")), fds, "detach left descriptors open")
            # The agent stays mapped (a thread may still run its code), inert.
            self.assertTrue(agent_loaded(r.pid))
            cp = cli("detach", r.pid)
            self.assertEqual((cp.returncode, cp.stdout.strip()), (0, f"process {r.pid} is not attached: nothing changed"))
            # Blocks counted while attached are freed after the detach, by libc.
            for c in commands[1:-1]:
                r.ask(c)
            self.assertEqual(r.ask("quit"), "bye")
        finally:
            out, err, rc = r.finish()
        self.assertEqual((rc, err), (0, ""))
        expected, _ = twin_output(commands)
        self.assertEqual(masked(out, r.pid), expected)

    def test_watch_says_the_process_was_detached_and_ends(self):
        # watch took a detach for the process's exit.
        with ending_cleanly(self, Running([program("attach_target")])) as r:
            attach(r.pid)
            watch = subprocess.Popen([gmtest.CLI, "watch", "--pid", str(r.pid), "--interval", "0.2",
                                      "/gc/heap/allocs:objects"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
            try:
                self.assertIn("/gc/heap/allocs:objects=", watch.stdout.readline())
                detach(r.pid)
                out, err = watch.communicate(timeout=30)
            finally:
                if watch.poll() is None:
                    watch.kill()
                    watch.communicate()
            self.assertEqual((watch.returncode, err), (0, ""))
            self.assertEqual(out.splitlines()[-1],
                             f"gometrics-cli watch: process {r.pid} was detached (the agent stopped publishing)")
            self.assertTrue(r.ask("work").startswith("worked"))

    def test_attach_work_and_detach_under_a_seccomp_allowlist(self):
        """A sandboxed process allows only the calls it makes, and kills it
        at any other: the agent's calls are all on the list that attach
        checks filters against (a new one kills the target here first), and
        so is restart_syscall, which the CLI's stops make a sleeping thread
        call."""
        r = Running([program("attach_target")], {"ATTACH_TARGET_SECCOMP": "allowlist"})
        try:
            for _ in range(2):
                attach(r.pid)
                self.assertTrue(r.ask("work").startswith("worked"))
                self.assertEqual(r.ask("thread"), "joined")
                self.assertEqual(dump(r.pid)[THREADS], 1)
                self.assertGreaterEqual(heap(r.pid)[0][0], 1030)
                detach(r.pid)
                self.assertFalse(os.path.exists(f"/dev/shm/gometrics.{r.pid}"), "detach left the segment")
            self.assertEqual(r.ask("quit"), "bye")
        finally:
            out, err, rc = r.finish()
        self.assertEqual((rc, err), (0, ""), out)

    def test_attach_under_a_filter_with_many_argument_rules(self):
        """A container-style profile: 40 rules on prctl's option, each
        mismatch going on to the next, 2^40 paths that rejoin. The CLI must
        still evaluate it (and find nothing fatal) rather than refuse."""
        with ending_cleanly(self, Running([program("attach_target")], {"ATTACH_TARGET_SECCOMP": "prctl-rules"})) as r:
            attach(r.pid)
            assert_work_counted(self, r)
            assert_detached(self, r)
            self.assertEqual(r.ask("quit"), "bye")

    def test_detach_after_the_program_confined_itself(self):
        """A server that sandboxes itself once running (every thread, the
        agent's too) can still be detached: a filter that kills openat
        refuses a new attach but not the detach, and detaching makes no call
        beyond its own list, nor does the program's exit after it."""
        for how in ("kill-openat", "detach-allowlist"):
            with self.subTest(how), ending_cleanly(self, Running([program("attach_target")])) as r:
                attach(r.pid)
                assert_work_counted(self, r)
                self.assertEqual(r.ask(f"confine {how}"), "confined")
                assert_detached(self, r)
                if how == "kill-openat":
                    cp = cli("attach", r.pid, timeout=60)
                    self.assertEqual(cp.returncode, 1, cp.stdout)
                    self.assertIn("answers openat with KILL_PROCESS", cp.stderr)
                self.assertEqual(r.ask("quit"), "bye")

    def test_detach_under_a_filter_that_fails_unlink(self):
        """A container's seccomp profile answers what it forbids with EPERM:
        the agent cannot remove its segment at detach, so the CLI does, and
        the next attach makes a new one."""
        with ending_cleanly(self, Running([program("attach_target")], {"ATTACH_TARGET_SECCOMP": "eperm-unlink"})) as r:
            for _ in range(2):
                attach(r.pid)
                assert_work_counted(self, r)
                assert_detached(self, r)
            self.assertEqual(r.ask("quit"), "bye")

    def test_no_segment_no_counting(self):
        """When the agent cannot make its segment (here a filter fails the
        fallocate it needs), attach says so in one line and nothing counts:
        the program's calls stay where they were."""
        r = Running([program("attach_target")], {"ATTACH_TARGET_SECCOMP": "eperm-fallocate"})
        try:
            cp = cli("attach", r.pid, timeout=60)
            self.assertEqual(cp.returncode, 1, cp.stdout)
            self.assertEqual(cp.stderr.strip(), f"gometrics-cli: the agent in process {r.pid} could not create its "
                             "segment in /dev/shm (the process's stderr says why): nothing is counted; run attach "
                             "again once that is mended")
            self.assertFalse(os.path.exists(f"/dev/shm/gometrics.{r.pid}"))
            self.assertTrue(r.ask("work").startswith("worked"))
            cp = cli("detach", r.pid)
            self.assertEqual((cp.returncode, cp.stdout.strip()), (0, f"process {r.pid} is not attached: nothing changed"))
            cp = cli("attach", r.pid, timeout=60)  # loaded now: the second way in fails alike
            self.assertEqual(cp.returncode, 1, cp.stdout)
            self.assertIn("could not create its segment", cp.stderr)
            self.assertEqual(r.ask("quit"), "bye")
        finally:
            out, err, rc = r.finish()
        self.assertEqual(rc, 0, out)
        self.assertEqual(err.count("cannot create /dev/shm segment (Operation not permitted): attach gives up, "
                                   "nothing is counted"), 1, err)

    def test_attach_again_counts_from_zero(self):
        self.attach_again_counts_from_zero({})

    def test_attach_again_counts_from_zero_in_locked_memory(self):
        """Under mlockall the kernel refuses to discard locked pages
        (MADV_DONTNEED): the map of counted blocks must be cleared anyway, or
        the first attach's blocks, freed after the second, would take its
        counts below zero."""
        self.attach_again_counts_from_zero({"ATTACH_TARGET_MLOCKALL": "1"})

    def attach_again_counts_from_zero(self, extra_env):
        # A sample every 64 KiB on average: "work"'s 2.5 MB goes unsampled
        # once in e^38 runs, where the default 512 KiB missed it once in 120.
        r = Running([program("attach_target")], {"GOMETRICS_PROFILE_RATE": "65536", **extra_env})
        try:
            attach(r.pid)
            r.ask("work")
            self.assertEqual(r.ask("thread"), "joined")
            self.assertEqual(dump(r.pid)[THREADS], 1)
            self.assertRegex(allocs_profile(r.pid), r"^alloc_space: total [0-9.]+ [KM]iB in [1-9]")
            detach(r.pid)
            r.ask("work")  # not counted: detached
            attach(r.pid)
            self.assertEqual(heap(r.pid)[0], [0, 0, 0, 0])
            # Profiles sample from this attach: the stacks of the first stay
            # known, with nothing counted on them.
            self.assertRegex(allocs_profile(r.pid), r"^alloc_space: total 0 B in [1-9]")
            self.assertEqual(dump(r.pid)[THREADS], 0)
            self.assertEqual(r.ask("thread"), "joined")
            self.assertEqual(dump(r.pid)[THREADS], 1)
            self.assertAlmostEqual(dump(r.pid)["/process/attached-at:seconds"], header(r.pid)[0] / 1e9, delta=1e-6)
            live = int(r.ask("work").split()[1])
            # This work's blocks only: what it kept, less what the earlier ones kept.
            values, m = heap(r.pid)
            self.assertEqual(values[:3], [1030, 505, 525])
            r.ask("free")  # every block: 525 of them counted in this attach
            self.assertEqual(heap(r.pid)[0], [1030, 1030, 0, 0])
            self.assertGreater(live, 0)
            assert_memory_classes(self, m)
        finally:
            r.kill()

    def test_objects_loaded_after_the_attach_are_counted(self):
        plugin = program("libattach_plugin.so")
        r = Running([program("attach_target")])
        try:
            attach(r.pid)
            self.assertEqual(r.ask(f"plugin {plugin} 300"), "plugged 300")
            values, _ = heap(r.pid)
            self.assertEqual(values[:3], [300, 0, 300], "the dlopen'd library's mallocs were not redirected")
            self.assertEqual(r.ask("unplug"), "unplugged")
            self.assertEqual(heap(r.pid)[0][:3], [300, 300, 0])
            detach(r.pid)
            self.assertEqual(r.ask(f"plugin {plugin} 5"), "plugged 5")  # restored too: nothing counts
            self.assertEqual(r.ask("unplug"), "unplugged")
            self.assertEqual(r.ask("quit"), "bye")
        finally:
            out, err, rc = r.finish()
        self.assertEqual((rc, err), (0, ""), out)

    def test_fork_after_attach_gives_the_child_its_segment(self):
        r = Running([program("attach_target")])
        child = None
        try:
            attach(r.pid)
            reply = r.ask("fork")
            self.assertTrue(reply.startswith("child "), reply)
            child = int(reply.split()[1])
            gmtest.wait_for_segment(child)
            _, state = header(child)
            self.assertTrue(state & gmtest.STATE_ATTACHED)
            values, _ = heap(child)
            self.assertEqual(values[0], 10)
            self.assertEqual(values[2], 10)
            self.assertTrue(os.path.exists(f"/dev/shm/gometrics.{r.pid}"), "the parent lost its segment")
        finally:
            if child:
                os.kill(child, 9)
            r.kill()

    def test_many_cycles_under_busy_threads(self):
        r = Running([program("attach_threads"), "8"])
        times = []
        try:
            for _ in range(100):
                t0 = time.monotonic()
                attach(r.pid)
                times.append(time.monotonic() - t0)
                objects, live = heap(r.pid)[0][2:]
                self.assertGreaterEqual(objects, 0)
                self.assertGreaterEqual(live, 0)
                detach(r.pid)
            attach(r.pid)
            reply = r.ask("stop")
            self.assertTrue(reply.startswith("loops "), reply)
            # Every block allocated since the attach was freed by the threads.
            values, m = heap(r.pid)
            self.assertEqual(values[2:], [0, 0])
            self.assertGreater(values[0], 0)
            self.assertGreater(m["/sync/mutex/wait/total:seconds"] if "/sync/mutex/wait/total:seconds" in m else 1, -1)
            detach(r.pid)
        finally:
            out, err, rc = r.finish()
        self.assertEqual((rc, err), (0, ""), out)
        self.assertNotIn("EINTR", out)
        print(f"attach with 8 busy threads: median {sorted(times)[len(times) // 2] * 1000:.1f} ms")

    def cycles_then_stop(self, cmd, cycles, min_allocs=0):
        """Attaches to cmd and detaches again `cycles` times (each attach
        counting at least min_allocs, each detach leaving no segment), then
        stops it: it must end with 0 and nothing on stderr."""
        r = Running(cmd)
        try:
            for _ in range(cycles):
                attach(r.pid)
                self.assertGreaterEqual(heap(r.pid)[0][0], min_allocs)
                detach(r.pid)
                self.assertFalse(os.path.exists(f"/dev/shm/gometrics.{r.pid}"))
            self.assertTrue(r.ask("stop").startswith("loops "))
        finally:
            out, err, rc = r.finish()
        self.assertEqual((rc, err), (0, ""), out)

    def test_cycles_while_threads_start_and_end(self):
        """Threads that keep starting and ending: the CLI once borrowed the
        agent's own thread for a detach (its futex wait looked quiet), which
        then waited for its own end and left the process neither attached
        nor detachable; and took a worker's end, seen while stopping it, for
        the process's. The old CLI failed within a few cycles."""
        self.cycles_then_stop([program("attach_threads"), "3", "bursts"], 30)

    def test_a_program_named_as_the_agents_thread(self):
        """The agent's thread is told by the tid it exports, not by its name
        (gometrics): a program of that name, all of whose threads carry it,
        is attached and detached as any other."""
        with tempfile.TemporaryDirectory() as d:
            link = os.path.join(d, "gometrics")
            os.symlink(program("attach_threads"), link)
            self.cycles_then_stop([link, "2"], 3)

    def test_a_process_whose_main_thread_ended(self):
        """pthread_exit in main: that thread cannot be stopped, and its maps,
        root and memory are gone from /proc; a live thread's serve instead.
        The old CLI said the process had no libc."""
        self.cycles_then_stop([program("attach_threads"), "2", "mainexit"], 2, min_allocs=1)


class HeapFromBeforeTheAttach(unittest.TestCase):
    """A process with 100,000 blocks (45 MB) of a realistic size mix from
    before the attach frees half of them and allocates as many anew, then
    frees all: live bytes track the allocator's own in-use figure throughout.
    That figure also holds the blocks its thread cache keeps for reuse (glibc:
    up to 230 KB a thread), which no count of live blocks can see."""

    BLOCKS = 100000

    def run_mix(self, extra_env, header):
        """header: bytes the allocator's figure holds beyond the usable size of
        each block (glibc's chunk header), for the blocks since the attach."""
        r = Running([program("attach_target"), str(self.BLOCKS)], extra_env)
        try:
            attach(r.pid)
            m = dump(r.pid)
            baseline = m[BEFORE]
            self.assertGreater(baseline, self.BLOCKS * 100, "the heap from before the attach is missing")
            self.assertEqual(m["/gc/heap/live:bytes"], baseline)

            in_use = int(r.ask("mixed").split()[1])
            m = dump(r.pid)
            mine = m["/gc/heap/live:bytes"] + header * m["/gc/heap/objects:objects"]
            self.assertGreater(m["/gc/heap/objects:objects"], self.BLOCKS // 2 - 1)
            self.assertLess(abs(mine - in_use), in_use / 100, f"live {mine} against the allocator's {in_use}")
            self.assertLess(m[BEFORE], baseline * 0.6, "frees of blocks from before the attach did not count")
            assert_memory_classes(self, m)

            in_use = int(r.ask("unmix").split()[1])
            m = dump(r.pid)
            mine = m["/gc/heap/live:bytes"] + header * m["/gc/heap/objects:objects"]
            self.assertLess(abs(mine - in_use), baseline / 100, f"live {mine} against the allocator's {in_use}")
            self.assertLess(m["/gc/heap/objects:objects"], 10)
            assert_memory_classes(self, m)
            self.assertEqual(r.ask("quit"), "bye")
        finally:
            out, err, rc = r.finish()
        self.assertEqual((rc, err), (0, ""))

    def test_glibc(self):
        # glibc's figure counts whole chunks: 8 bytes of header beyond each
        # block's usable size (none of these is mmapped).
        self.run_mix({}, 8)

    def test_jemalloc(self):
        self.run_mix({"LD_PRELOAD": JEMALLOC_LIB}, 0)

    def test_detach_gives_back_the_map_of_counted_blocks(self):
        """The map of which blocks were counted (a byte per 32 bytes of a
        glibc heap's span) is resident while attached; a detach gives its
        pages back rather than leave them to the program."""
        def anonymous_kib(pid):
            with open(f"/proc/{pid}/smaps_rollup") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("Anonymous:"))
        r = Running([program("attach_target"), str(self.BLOCKS)])
        try:
            attach(r.pid)
            r.ask("mixed")  # half the blocks anew, each marked across the heap's 45 MB
            attached = anonymous_kib(r.pid)
            detach(r.pid)
            # 45 MB / 32 is 1.4 MB of map, of which the marks touched most pages.
            self.assertGreater(attached - anonymous_kib(r.pid), 1000)
            self.assertTrue(r.ask("unmix").startswith("inuse"))
            self.assertEqual(r.ask("quit"), "bye")
        finally:
            out, err, rc = r.finish()
        self.assertEqual((rc, err), (0, ""), out)


class Refusals(unittest.TestCase):
    """Each case the CLI refuses: one line on stderr, exit status 1, and the
    target untouched (no agent, no segment) and still working."""

    def assert_refused(self, cp, *fragments, line=None):
        """cp refused in one line: `line` exactly, or one holding each fragment."""
        self.assertEqual(cp.returncode, 1, cp.stdout)
        self.assertEqual(len(cp.stderr.strip().splitlines()), 1, cp.stderr)
        if line is not None:
            self.assertEqual(cp.stderr.strip(), "gometrics-cli: " + line)
        for fragment in fragments:
            self.assertIn(fragment, cp.stderr)

    def assert_untouched(self, r):
        self.assertFalse(agent_loaded(r.pid))
        self.assertFalse(os.path.exists(f"/dev/shm/gometrics.{r.pid}"))

    def assert_still_works(self, r):
        """attach_target, untouched, answers as before."""
        self.assert_untouched(r)
        self.assertTrue(r.ask("work").startswith("worked"))

    def target(self, argv, env=None):
        return ending_cleanly(self, Running(argv, env))

    def quit(self, r):
        self.assertEqual(r.ask("quit"), "bye")

    def test_no_such_process(self):
        self.assert_refused(cli("attach", "4194303"), line="no process 4194303")

    def test_already_traced(self):
        r = Running([program("attach_target")])
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            self.assertEqual(libc.ptrace(0x4206, r.pid, None, None), 0, "PTRACE_SEIZE from the test failed")
            self.assert_refused(cli("attach", r.pid), f"process {r.pid} is already traced by process {os.getpid()}")
            self.assert_still_works(r)
        finally:
            r.kill()

    def test_no_safe_point_in_a_handler_over_malloc(self):
        # The main thread sits in a signal handler that interrupted libc
        # (its malloc or free, holding the arena's lock: there is a second
        # thread), blocked in read(); the other waits on a PI mutex. Borrowing
        # the first deadlocked the process in dlopen's malloc: attach gives up.
        with self.target([program("attach_handler")]) as r:
            self.assertEqual(r.line(), "held")
            t0 = time.monotonic()
            self.assert_refused(cli("attach", r.pid, timeout=60),
                                f"no thread of {r.pid} reached a safe point in 3000 ms", "signal handler")
            self.assertLess(time.monotonic() - t0, 20)
            self.assert_untouched(r)
            self.assertEqual(r.ask("go"), "done")

    def test_a_seccomp_filter_that_would_kill_it(self):
        with self.target([program("attach_target")], {"ATTACH_TARGET_SECCOMP": "kill-openat"}) as r:
            self.assert_refused(cli("attach", r.pid, timeout=60),
                                line=f"process {r.pid}'s seccomp filter answers openat with KILL_PROCESS, and the "
                                "agent makes that call: attach refuses; nothing was changed")
            self.assert_still_works(r)
            self.quit(r)

    def test_a_filter_that_kills_a_stopped_sleep_on_its_way_back(self):
        """A thread stopped in a timed sleep resumes through restart_syscall:
        under a filter that kills that call, reading the filter must not
        kill the process, whether the CLI can read it or not."""
        setpriv = shutil.which("setpriv")
        self.assertIsNotNone(setpriv, "setpriv (util-linux) is needed")
        with self.target([program("attach_target")],
                         {"ATTACH_TARGET_SECCOMP": "kill-restart", "ATTACH_TARGET_SLEEPER": "1"}) as r:
            for i in range(6):
                unprivileged = [setpriv, "--inh-caps=-sys_admin", "--bounding-set=-sys_admin"] if i % 2 else []
                cp = subprocess.run(unprivileged + [gmtest.CLI, "attach", str(r.pid)], capture_output=True, text=True,
                                    timeout=60)
                self.assert_refused(cp, "cannot read" if i % 2 else "answers restart_syscall with KILL_PROCESS, "
                                    "where attaching needs it allowed")
                self.assertIsNone(r.proc.poll(), "the target died")
            self.assert_still_works(r)
            self.quit(r)

    def test_a_seccomp_filter_it_cannot_read(self):
        # Only CAP_SYS_ADMIN may read another process's filter: without it
        # the CLI cannot know what the filter kills, and refuses.
        setpriv = shutil.which("setpriv")
        self.assertIsNotNone(setpriv, "setpriv (util-linux) is needed")
        with self.target([program("attach_target")], {"ATTACH_TARGET_SECCOMP": "allowlist"}) as r:
            cp = subprocess.run([setpriv, "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", gmtest.CLI, "attach",
                                 str(r.pid)], capture_output=True, text=True, timeout=60)
            self.assert_refused(cp, f"process {r.pid} runs under a seccomp filter that gometrics-cli cannot read")
            self.assert_still_works(r)
            self.quit(r)

    def test_locked_memory_within_a_limit(self):
        """A program that locks all its memory (mlockall) under a finite
        RLIMIT_MEMLOCK would have every page of the agent's taken from what
        it may lock, and its own mappings fail (seen: its mallocs failed)."""
        setpriv, prlimit = shutil.which("setpriv"), shutil.which("prlimit")
        self.assertTrue(setpriv and prlimit, "setpriv and prlimit (util-linux) are needed")
        with tempfile.TemporaryDirectory() as d:
            target = nobodys_copy(d, "attach_target")
            with self.target([prlimit, "--memlock=8388608:8388608", setpriv, "--reuid=65534", "--regid=65534",
                              "--clear-groups", target], {"ATTACH_TARGET_MLOCKALL": "1"}) as r:
                with open(f"/proc/{r.pid}/status") as f:
                    locked = [line for line in f if line.startswith("VmLck")]
                self.assert_refused(cli("attach", r.pid, timeout=60),
                                    line=f"process {r.pid} locks its memory (mlockall) within RLIMIT_MEMLOCK: every "
                                    "page of the agent's would be taken from what it may lock; attach refuses, "
                                    "nothing was changed")
                with open(f"/proc/{r.pid}/status") as f:
                    self.assertEqual([line for line in f if line.startswith("VmLck")], locked)
                self.assert_still_works(r)
                self.quit(r)

    def test_another_users_process(self):
        # The target runs as nobody (a copy of the program where nobody can
        # run it); the CLI as root without any capability, so that the
        # kernel refuses to let it trace another user's process.
        setpriv = shutil.which("setpriv")
        self.assertIsNotNone(setpriv, "setpriv (util-linux) is needed")
        with tempfile.TemporaryDirectory() as d:
            r = Running([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", nobodys_copy(d, "attach_target")])
            try:
                cp = subprocess.run([setpriv, "--inh-caps=-all", "--bounding-set=-all", gmtest.CLI, "attach",
                                     str(r.pid)], capture_output=True, text=True, timeout=30)
                self.assert_refused(cp, f"cannot trace {r.pid}")
                self.assert_still_works(r)
            finally:
                r.kill()

    def test_static_binary(self):
        r = Running([program("attach_static")])
        try:
            self.assert_refused(cli("attach", r.pid), "has no libc.so.6 (statically linked?)")
            self.assert_still_works(r)
        finally:
            r.kill()

    def test_go_binary(self):
        go = shutil.which("go")
        self.assertIsNotNone(go, "go (golang-go) is needed")
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "main.go")
            with open(src, "w") as f:
                f.write('package main\nimport ("bufio"; "fmt"; "os")\n'
                        'func main() { fmt.Println("ready"); bufio.NewReader(os.Stdin).ReadString(10) }\n')
            env = dict(plain_env(), GOCACHE=os.path.join(d, "cache"), GOPATH=os.path.join(d, "gopath"),
                       GOFLAGS="-mod=mod", GO111MODULE="off", CGO_ENABLED="0")
            subprocess.run([go, "build", "-o", os.path.join(d, "goapp"), src], check=True, env=env, timeout=240,
                           capture_output=True)
            r = Running([os.path.join(d, "goapp")])
            try:
                self.assert_refused(cli("attach", r.pid), "is a Go program")
                self.assert_untouched(r)
            finally:
                r.kill()


if __name__ == "__main__":
    gmtest.main()
