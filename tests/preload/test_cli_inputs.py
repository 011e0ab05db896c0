"""Bad input to the CLI, and hostile segments and names: one clear line and
a non-zero status, never a crash or a hang, and exec keeps CMD's status.
Each case is one an adversarial review of the CLI reproduced."""

import json
import mmap
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import gmtest
from gmtest import cli, program


def unused_pid():
    """A pid no process has (a segment named for it is nobody's)."""
    pid = 4_000_000
    while os.path.exists(f"/proc/{pid}") or os.path.exists(f"/dev/shm/gometrics.{pid}"):
        pid -= 1
    return pid


def as_nobody(args):
    """args run as user nobody when we are root (a non-root reader's open is
    the one a FIFO blocked), else as ourselves."""
    if os.geteuid() == 0 and shutil.which("setpriv"):
        return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *args]
    return args


class HostileSegments(unittest.TestCase):
    def test_a_fifo_named_as_a_segment_is_refused_not_waited_on(self):
        pid = unused_pid()
        path = f"/dev/shm/gometrics.{pid}"
        os.mkfifo(path, 0o444)
        try:
            for args in (["read", "--pid", str(pid), "/gc/heap/objects:objects"], ["ps"], ["gc"]):
                cp = subprocess.run(as_nobody([gmtest.CLI, *args]), capture_output=True, text=True, timeout=20)
                if args[0] == "read":
                    self.assertEqual(cp.returncode, 1, cp.stderr)
                    self.assertIn("not a regular file", cp.stderr)
                    self.assertEqual(len(cp.stderr.splitlines()), 1, cp.stderr)
        finally:
            os.unlink(path)

    def test_a_segment_truncated_while_read_is_an_error_not_a_crash(self):
        # A copy of a real segment, published by this process under its own
        # pid, is cut to one page whenever a reader asks for a snapshot.
        with gmtest.Spawned(["sleep", "30"]) as p:
            with open(f"/dev/shm/gometrics.{p.pid}", "rb") as f:
                image = bytearray(f.read())
        me = os.getpid()
        image[24:28] = me.to_bytes(4, "little")  # SegmentHeader::pid
        image[96:100] = (1).to_bytes(4, "little")  # state: a publisher thread answers
        path = f"/dev/shm/gometrics.{me}"
        with open(path, "wb") as f:
            f.write(image)
        fd = os.open(path, os.O_RDWR)
        m = mmap.mmap(fd, len(image))
        stop = threading.Event()

        def cut_when_asked():
            asked = int.from_bytes(m[92:96], "little")  # SegmentHeader::request
            while not stop.is_set():
                if int.from_bytes(m[92:96], "little") != asked:
                    os.ftruncate(fd, 4096)
                    time.sleep(0.3)
                    os.ftruncate(fd, len(image))
                    m[:] = image
                    asked = int.from_bytes(m[92:96], "little")
                time.sleep(0.0005)

        cutter = threading.Thread(target=cut_when_asked)
        cutter.start()
        try:
            for args in (["read", "--pid", me, "/gc/heap/live:bytes"], ["dump", "--pid", me, "--format", "json"]):
                cp = cli(*args)
                self.assertEqual(cp.returncode, 1, cp.stderr)  # not 135, SIGBUS
                self.assertIn("truncated segment", cp.stderr)
                time.sleep(0.4)
        finally:
            stop.set()
            cutter.join()
            m.close()
            os.close(fd)
            os.unlink(path)

    def test_a_live_process_whose_segment_cannot_be_read_is_named_not_hidden(self):
        # ps left such a process out without a word. One whose agent is
        # still creating its segment (magic not yet written) is no problem.
        corrupt = subprocess.Popen(["sleep", "30"])
        starting = subprocess.Popen(["sleep", "30"])
        paths = [f"/dev/shm/gometrics.{corrupt.pid}", f"/dev/shm/gometrics.{starting.pid}"]
        try:
            with open(paths[0], "wb") as f:
                f.write(b"\1" * 8192)
            with open(paths[1], "wb") as f:
                f.write(b"\0" * 8192)
            cp = cli("ps")
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertIn(f"gometrics-cli: pid {corrupt.pid} (sleep) left out: {paths[0]}: "
                          "not a gometrics segment (bad magic)\n", cp.stderr)
            self.assertNotIn(f"pid {starting.pid} ", cp.stderr)
            self.assertNotIn(f" {corrupt.pid} ", cp.stdout)
        finally:
            for p in (corrupt, starting):
                p.kill()
                p.wait()
            for path in paths:
                os.unlink(path)


class Output(unittest.TestCase):
    def test_a_closed_stderr_is_no_crash(self):
        cp = subprocess.run([gmtest.CLI, "read", "--pid", str(unused_pid()), "/x:y"], stderr=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, timeout=30, preexec_fn=lambda: os.close(2))
        self.assertEqual(cp.returncode, 1)  # not 134, an abort

    def test_output_lost_to_a_full_disk_is_an_error(self):
        with open("/dev/full", "w") as full:
            cp = subprocess.run([gmtest.CLI, "ps"], stdout=full, stderr=subprocess.PIPE, text=True, timeout=30)
        self.assertEqual(cp.returncode, 1)
        self.assertIn("cannot write the output", cp.stderr)


class Exec(unittest.TestCase):
    def exec_(self, *args, **kw):
        return subprocess.run([gmtest.CLI, "exec", "-q", *args], capture_output=True, text=True, timeout=60,
                              env=gmtest.agent_env(), **kw)

    def test_cmds_status_survives_a_report_that_cannot_be_written(self):
        cp = self.exec_("--report", "/nonexistent/dir/r.json", "--", "sh", "-c", "exit 3")
        self.assertEqual(cp.returncode, 3)
        self.assertIn("cannot write /nonexistent/dir/r.json", cp.stderr)

    def test_cmds_status_survives_a_closed_stderr(self):
        cp = subprocess.run([gmtest.CLI, "exec", "--", "sh", "-c", "exit 3"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, timeout=60, env=gmtest.agent_env(),
                            preexec_fn=lambda: os.close(2))
        self.assertEqual(cp.returncode, 3)

    def test_a_report_goes_through_a_link_and_into_a_fifo(self):
        # (A FIFO of our own, not /dev/null: an exec that replaced the file
        # it was given would replace the machine's /dev/null.)
        with tempfile.TemporaryDirectory() as d:
            target, link = os.path.join(d, "target.json"), os.path.join(d, "link.json")
            os.symlink(target, link)
            self.assertEqual(self.exec_("--report", link, "--", "true").returncode, 0)
            self.assertTrue(os.path.islink(link))
            with open(target) as f:
                self.assertEqual(json.load(f)["exit_status"], 0)
            fifo = os.path.join(d, "fifo")
            os.mkfifo(fifo)
            got = []
            reader = threading.Thread(target=lambda: got.append(open(fifo).read()))
            reader.start()
            cp = self.exec_("--report", fifo, "--", "true")
            reader.join(timeout=30)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertEqual(json.loads(got[0])["exit_status"], 0)
            self.assertFalse(os.path.isfile(fifo))

    def test_a_command_line_that_is_not_utf8_still_gets_its_report(self):
        with tempfile.TemporaryDirectory() as d:
            report = os.path.join(d, "r.json")
            cp = subprocess.run([gmtest.CLI, "exec", "-q", "--report", report, "--", "sh", "-c", "exit 3", b"\xff"],
                                capture_output=True, timeout=60, env=gmtest.agent_env())
            self.assertEqual(cp.returncode, 3, cp.stderr)
            with open(report) as f:
                self.assertEqual(json.load(f)["exit_status"], 3)

    def test_an_agent_that_cannot_be_preloaded_is_refused(self):
        for agent, why in (("/etc/passwd", "not a shared object"), ("/tmp", "not a regular file")):
            cp = subprocess.run([gmtest.CLI, "exec", "--", "true"], capture_output=True, text=True, timeout=30,
                                env=dict(os.environ, GOMETRICS_AGENT=agent))
            self.assertEqual(cp.returncode, 1)
            self.assertIn(why, cp.stderr)


class Arguments(unittest.TestCase):
    def test_numbers_are_decimal_and_values_are_given(self):
        for args, said in ((["read", "--pid", "0x10", "/x:y"], "expected a decimal integer"),
                           (["read", "--pid", "", "/x:y"], "expected a decimal integer"),
                           (["watch", "-n", "010x"], "expected a decimal integer"),
                           (["diff", "--fail-over", "", "a", "b"], "expected a value"),
                           (["exec", "--report", "--", "true"], "expected a value"),
                           (["profile", "heap", "--top", "0"], "not in range")):
            cp = cli(*args)
            self.assertEqual(cp.returncode, 2, (args, cp.stderr))
            self.assertIn(said, cp.stderr)
        # a leading zero is decimal, not octal
        pid = unused_pid()
        cp = cli("read", "--pid", f"0{pid}", "/x:y")
        self.assertIn(f"no process {pid}", cp.stderr)

    def test_a_profile_report_that_is_no_file_is_refused_not_read_for_ever(self):
        cp = cli("profile", "heap", "--from-report", "/dev/zero", "-o", os.devnull, timeout=20)
        self.assertEqual(cp.returncode, 1, cp.stderr)
        self.assertEqual(cp.stderr, "gometrics-cli: cannot read /dev/zero: not a regular file\n")

    def test_gc_removes_what_it_can_and_leaves_what_is_no_segment(self):
        stale, odd = unused_pid(), unused_pid() - 1
        with open(f"/dev/shm/gometrics.{stale}", "wb") as f:
            f.write(b"\0" * 64)
        os.mkdir(f"/dev/shm/gometrics.{odd}")
        try:
            cp = cli("gc")
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertFalse(os.path.exists(f"/dev/shm/gometrics.{stale}"))
            self.assertTrue(os.path.isdir(f"/dev/shm/gometrics.{odd}"))
        finally:
            if os.path.exists(f"/dev/shm/gometrics.{stale}"):
                os.unlink(f"/dev/shm/gometrics.{stale}")
            os.rmdir(f"/dev/shm/gometrics.{odd}")


class Reports(unittest.TestCase):
    """A saved report is a file anyone may have edited: check and diff
    refuse a wrong one with one line and status 1."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        cls.good = os.path.join(cls.dir, "good.json")
        cp = cli("exec", "--quiet", "--report", cls.good, "--", "/bin/true")
        assert cp.returncode == 0, cp.stderr
        with open(cls.good) as f:
            cls.doc = json.load(f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def refused(self, text, expected):
        path = os.path.join(self.dir, "bad.json")
        with open(path, "w") as f:
            f.write(text)
        for args in (["check", path, "/gc/heap/objects:objects>=0"], ["diff", self.good, path]):
            cp = cli(*args)
            self.assertEqual(cp.returncode, 1, (args, cp.stderr))
            self.assertEqual(len(cp.stderr.splitlines()), 1, cp.stderr)
            self.assertIn(expected, cp.stderr)

    def edited(self, edit):
        doc = json.loads(json.dumps(self.doc))
        edit(doc["metrics"])
        return json.dumps(doc)

    def histogram(self, metrics):
        return next(m for m in metrics if m["kind"] == "float64-histogram")["value"]

    def test_a_report_nested_thousands_deep_is_refused_not_a_crash(self):
        deep = "[" * 100_000 + "]" * 100_000
        self.refused('{"metrics": [{"name": "/x:bytes", "kind": ' + deep + ', "value": 1}]}', "nested over")

    def test_a_name_twice_is_refused(self):
        self.refused(self.edited(lambda m: m.append(m[0])), "appears twice")

    def test_histogram_edges_must_increase(self):
        def swap(m):
            b = self.histogram(m)["buckets"]
            b[3], b[4] = b[4], b[3]
        self.refused(self.edited(swap), "has a malformed value")

    def test_histogram_counts_must_not_overflow(self):
        def overflow(m):
            c = self.histogram(m)["counts"]
            c[1], c[2] = 2**64 - 1, 5
        self.refused(self.edited(overflow), "has a malformed value")

    def test_the_report_as_written_is_accepted(self):
        cp = cli("check", self.good, "/gc/heap/objects:objects>=0")
        self.assertEqual(cp.returncode, 0, cp.stderr)


class Serve(unittest.TestCase):
    def test_a_port_in_use_is_refused(self):
        first = subprocess.Popen([gmtest.CLI, "serve", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            port = first.stdout.readline().rsplit(":", 1)[1].split("/")[0]
            cp = cli("serve", "--listen", f"127.0.0.1:{port}", timeout=10)
            self.assertEqual(cp.returncode, 1)
            self.assertIn("Address already in use", cp.stderr)
        finally:
            first.kill()
            first.communicate()


if __name__ == "__main__":
    gmtest.main()
