"""`gometrics-cli serve` over real HTTP: Prometheus and OpenMetrics pages that
promtool accepts, the JSON API and the HTML index, and a server that keeps
serving when a process vanishes or a segment is garbage."""

import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import unittest
import urllib.request

import gmserve
import gmtest
from gmserve import Serve, sample_value, own_value

PROMTOOL = shutil.which("promtool")


def promtool_check(page):
    """promtool's complaints about an exposition page ('' when none)."""
    cp = subprocess.run([PROMTOOL, "check", "metrics"], input=page, capture_output=True, text=True, timeout=60)
    return "" if cp.returncode == 0 and not (cp.stdout + cp.stderr).strip() else cp.stdout + cp.stderr


class Pages(unittest.TestCase):
    """Two instrumented `sleep`s, served with --pid. An idle single-threaded
    program has no publisher thread by default, and its /proc figures stay as
    of its last allocations: these compare them with /proc now, so they ask
    for the thread."""

    @classmethod
    def setUpClass(cls):
        cls.a = gmserve.Instrumented(["sleep", "60"], {"GOMETRICS_PUBLISHER": "thread"})
        cls.b = gmserve.Instrumented(["sleep", "60"], {"GOMETRICS_PUBLISHER": "thread"})
        cls.pa, cls.pb = cls.a.__enter__(), cls.b.__enter__()
        cls.serve = Serve("--pid", cls.pa.pid, "--pid", cls.pb.pid)
        cls.serve.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.serve.stop()
        cls.a.__exit__(None, None, None)
        cls.b.__exit__(None, None, None)

    def test_text_format_has_both_processes_once_per_family(self):
        status, ctype, page = self.serve.get("/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(ctype, "text/plain; version=0.0.4; charset=utf-8")
        for p in (self.pa, self.pb):
            allocs = sample_value(page, "gometrics_gc_heap_allocs_bytes_total", p.pid)
            self.assertIsNotNone(allocs, page[:2000])
            self.assertGreater(allocs, 0)
            self.assertIn(f'gometrics_gc_heap_allocs_bytes_total{{comm="sleep",pid="{p.pid}"}}', page)
            # A histogram: buckets, +Inf, exact _sum (= allocs:bytes), _count (= allocs:objects).
            self.assertIn(f'gometrics_gc_heap_allocs_by_size_bytes_bucket{{comm="sleep",pid="{p.pid}",le="+Inf"}}',
                          page)
            self.assertEqual(sample_value(page, "gometrics_gc_heap_allocs_by_size_bytes_sum", p.pid), allocs)
            self.assertEqual(sample_value(page, "gometrics_gc_heap_allocs_by_size_bytes_count", p.pid),
                             sample_value(page, "gometrics_gc_heap_allocs_objects_total", p.pid))
        self.assertEqual(page.count("# TYPE gometrics_gc_heap_allocs_bytes_total counter\n"), 1)
        self.assertEqual(own_value(page, "gometrics_serve_processes"), 2)
        self.assertEqual(own_value(page, "gometrics_serve_read_errors_total"), 0)
        self.assertGreater(own_value(page, "gometrics_serve_scrape_duration_seconds"), 0)
        # Every family appears once and only Prometheus names are used.
        types = re.findall(r"^# TYPE (\S+) ", page, re.M)
        self.assertEqual(len(types), len(set(types)))
        self.assertFalse([n for n in types if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", n)])

    def test_standard_process_metrics_as_client_golang_names_them(self):
        _, _, page = self.serve.get("/metrics")
        for name, kind in (("process_cpu_seconds_total", "counter"), ("process_open_fds", "gauge"),
                           ("process_max_fds", "gauge"), ("process_virtual_memory_bytes", "gauge"),
                           ("process_virtual_memory_max_bytes", "gauge"),
                           ("process_resident_memory_bytes", "gauge"), ("process_start_time_seconds", "gauge")):
            self.assertEqual(page.count(f"# TYPE {name} {kind}\n"), 1, name)
        ticks = os.sysconf("SC_CLK_TCK")
        with open("/proc/stat") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        for p in (self.pa, self.pb):
            self.assertIn(f'process_open_fds{{comm="sleep",pid="{p.pid}"}}', page)
            with open(f"/proc/{p.pid}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
            # Fields 14, 15 and 22 of /proc/PID/stat (utime, stime, starttime), in ticks.
            utime, stime, start = int(stat[11]), int(stat[12]), int(stat[19])
            self.assertAlmostEqual(sample_value(page, "process_start_time_seconds", p.pid), btime + start / ticks,
                                   places=3)
            self.assertAlmostEqual(sample_value(page, "process_cpu_seconds_total", p.pid), (utime + stime) / ticks,
                                   delta=0.05)
            self.assertEqual(sample_value(page, "process_open_fds", p.pid), len(gmtest.program_fds(p.pid)))
            with open(f"/proc/{p.pid}/status") as f:
                rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
            self.assertAlmostEqual(sample_value(page, "process_resident_memory_bytes", p.pid) / rss, 1, delta=0.2)
            with open(f"/proc/{p.pid}/limits") as f:
                limits = {line[:26].strip(): line[26:].split() for line in f}
            self.assertEqual(sample_value(page, "process_max_fds", p.pid), int(limits["Max open files"][0]))
            as_limit = limits["Max address space"][0]
            self.assertEqual(sample_value(page, "process_virtual_memory_max_bytes", p.pid),
                             float(2**63 - 1) if as_limit == "unlimited" else int(as_limit))
            with open(f"/proc/{p.pid}/status") as f:
                vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
            self.assertAlmostEqual(sample_value(page, "process_virtual_memory_bytes", p.pid) / vm, 1, delta=0.2)

    @unittest.skipUnless(PROMTOOL, "promtool not installed (Debian package prometheus; scripts/setup.sh test)")
    def test_promtool_finds_no_problem(self):
        _, _, page = self.serve.get("/metrics")
        self.assertEqual(promtool_check(page), "")

    def test_openmetrics_page_passes_a_strict_parser(self):
        # prometheus_client's OpenMetrics parser rejects any deviation from
        # the spec (Debian's python3-prometheus-client, for the system python).
        system_python = gmtest.PYTHON
        probe = subprocess.run([system_python, "-c", "import prometheus_client"], capture_output=True)
        if probe.returncode != 0:
            self.skipTest("python3-prometheus-client not installed (scripts/setup.sh test installs it)")
        _, _, page = self.serve.get("/metrics", accept=gmserve.PROMETHEUS_ACCEPT)
        code = ("import sys\n"
                "from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n"
                "fams = list(parse(sys.stdin.read()))\n"
                "print(sum(len(f.samples) for f in fams if f.name == 'gometrics_gc_heap_allocs_bytes'))\n")
        cp = subprocess.run([system_python, "-c", code], input=page, capture_output=True, text=True, timeout=60)
        self.assertEqual(cp.returncode, 0, cp.stderr[-2000:])
        self.assertEqual(cp.stdout.strip(), "2")  # one series per process

    def test_openmetrics_when_the_scraper_asks(self):
        status, ctype, page = self.serve.get("/metrics", accept=gmserve.PROMETHEUS_ACCEPT)
        self.assertEqual(status, 200)
        self.assertEqual(ctype, "application/openmetrics-text; version=1.0.0; charset=utf-8")
        self.assertTrue(page.endswith("# EOF\n"))
        self.assertIn("# TYPE gometrics_gc_heap_allocs_bytes counter\n", page)
        self.assertIn(f'gometrics_gc_heap_allocs_bytes_total{{comm="sleep",pid="{self.pa.pid}"}} ', page)
        # A scraper that prefers the text format gets it.
        _, ctype, page = self.serve.get("/metrics", accept="text/plain;version=0.0.4,application/openmetrics-text;q=0.5")
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"))
        self.assertNotIn("# EOF", page)

    def test_gzip_never_brotli(self):
        # What Prometheus and browsers send; the answer is gzip either way.
        for encodings in ("gzip", "gzip, deflate, br"):
            req = urllib.request.Request(self.serve.url + "/metrics", headers={
                "Accept": gmserve.PROMETHEUS_ACCEPT, "Accept-Encoding": encodings})
            with urllib.request.urlopen(req, timeout=20) as r:
                self.assertEqual(r.headers["Content-Encoding"], "gzip")
                page = gzip.decompress(r.read()).decode()
            self.assertTrue(page.endswith("# EOF\n"))
            self.assertIn(f'pid="{self.pa.pid}"', page)
        req = urllib.request.Request(self.serve.url + "/metrics", headers={"Accept-Encoding": "br"})
        with urllib.request.urlopen(req, timeout=20) as r:
            self.assertIsNone(r.headers["Content-Encoding"])
            self.assertIn(f'pid="{self.pa.pid}"', r.read().decode())

    def test_json_is_dump_format(self):
        status, ctype, body = self.serve.get("/api/v1/processes")
        self.assertEqual(status, 200)
        self.assertEqual(ctype, "application/json")
        docs = {d["pid"]: d for d in json.loads(body)}
        self.assertEqual(set(docs), {self.pa.pid, self.pb.pid})
        dumped = json.loads(gmtest.cli("dump", "--pid", self.pa.pid, "--format", "json", check=True).stdout)
        doc = docs[self.pa.pid]
        self.assertEqual(doc["comm"], "sleep")
        self.assertGreater(doc["time_ns"], doc["start_time_ns"])
        self.assertGreaterEqual(doc["uptime_seconds"], 0)
        self.assertEqual([(m["name"], m["kind"], m["cumulative"]) for m in doc["metrics"]],
                         [(m["name"], m["kind"], m["cumulative"]) for m in dumped["metrics"]])
        # Same histogram edges as dump's (the values of two reads may differ).
        edges = {m["name"]: m["value"]["buckets"] for m in dumped["metrics"] if m["kind"] == "float64-histogram"}
        self.assertTrue(edges)
        for m in doc["metrics"]:
            if m["name"] in edges:
                self.assertEqual(m["value"]["buckets"], edges[m["name"]])

        status, _, body = self.serve.get(f"/api/v1/processes/{self.pb.pid}")
        self.assertEqual(status, 200)
        one = json.loads(body)
        self.assertEqual(one["pid"], self.pb.pid)
        self.assertIn("/gc/heap/allocs:bytes", [m["name"] for m in one["metrics"]])

    def test_unknown_pid_and_path_are_404(self):
        for path in ("/api/v1/processes/999999999", f"/api/v1/processes/{os.getpid()}"):
            status, ctype, body = self.serve.get(path)
            self.assertEqual(status, 404, path)
            self.assertEqual(ctype, "application/json")
            self.assertIn("error", json.loads(body))
        self.assertEqual(self.serve.get("/api/v1/processes/abc")[0], 404)
        self.assertEqual(self.serve.get("/nothing")[0], 404)

    def test_html_index_links_every_process(self):
        status, ctype, page = self.serve.get("/")
        self.assertEqual(status, 200)
        self.assertTrue(ctype.startswith("text/html"))
        for p in (self.pa, self.pb):
            self.assertIn(f'href="/api/v1/processes/{p.pid}"', page)
        self.assertIn('href="/metrics"', page)


class Resilience(unittest.TestCase):
    def test_vanished_process_and_corrupt_segment_leave_the_others_served(self):
        plain = gmserve.live_plain_process()
        planted = f"/dev/shm/gometrics.{plain.pid}"
        try:
            with open(planted, "wb") as f:
                f.write(b"this is not a gometrics segment" * 10)
            os.chmod(planted, 0o600)
            # `head -c 1` exits normally (removing its segment) once it reads a byte.
            with gmserve.Instrumented(["sleep", "60"]) as keep, gmserve.Instrumented(["sleep", "60"]) as killed, \
                    gmserve.Instrumented(["head", "-c", "1"]) as ended:
                srv = Serve("--pid", keep.pid, "--pid", killed.pid, "--pid", ended.pid, "--pid", plain.pid)
                with srv:
                    _, _, page = srv.get("/metrics")
                    for p in (keep, killed, ended):
                        self.assertIsNotNone(sample_value(page, "gometrics_gc_heap_allocs_bytes_total", p.pid))
                    self.assertEqual(own_value(page, "gometrics_serve_processes"), 3)
                    self.assertEqual(own_value(page, "gometrics_serve_read_errors_total"), 1)

                    # SIGKILL leaves a stale segment; a normal exit removes it.
                    killed.kill()
                    killed.wait(timeout=10)
                    ended.stdin.write("x")
                    ended.stdin.flush()
                    ended.wait(timeout=10)
                    self.assertFalse(os.path.exists(f"/dev/shm/gometrics.{ended.pid}"))
                    for _ in range(3):
                        status, _, page = srv.get("/metrics")
                        self.assertEqual(status, 200)
                        self.assertIsNotNone(sample_value(page, "gometrics_gc_heap_allocs_bytes_total", keep.pid))
                        self.assertNotIn(f'pid="{killed.pid}"', page)
                        self.assertNotIn(f'pid="{ended.pid}"', page)
                        self.assertEqual(own_value(page, "gometrics_serve_processes"), 1)
                    # The corrupt segment counts once per scrape; exits are not errors.
                    self.assertEqual(own_value(page, "gometrics_serve_read_errors_total"), 4)
                    if PROMTOOL:
                        self.assertEqual(promtool_check(page), "")

                    status, ctype, body = srv.get(f"/api/v1/processes/{plain.pid}")
                    self.assertEqual(status, 500)
                    self.assertIn("error", json.loads(body))
                    self.assertEqual(srv.get(f"/api/v1/processes/{killed.pid}")[0], 404)
                    self.assertEqual(srv.get(f"/api/v1/processes/{keep.pid}")[0], 200)
                self.assertEqual(srv.returncode, 0, srv.stderr)
                # Logged once, though it failed in five requests.
                self.assertEqual(srv.stderr.count(f"process {plain.pid} left out"), 1, srv.stderr)
                self.assertNotIn(f"process {killed.pid}", srv.stderr)
        finally:
            if os.path.exists(planted):
                os.unlink(planted)
            plain.kill()
            plain.wait()

    def test_stopped_process_gives_its_latest_snapshot(self):
        # A stopped publisher cannot answer the request for a fresh snapshot:
        # the scrape waits out its deadline and serves the latest one.
        with gmserve.Instrumented(["sleep", "60"]) as stopped, gmserve.Instrumented(["sleep", "60"]) as running, \
                Serve("--pid", stopped.pid, "--pid", running.pid) as srv:
            os.kill(stopped.pid, signal.SIGSTOP)
            try:
                for _ in range(2):
                    status, _, page = srv.get("/metrics")
                    self.assertEqual(status, 200)
                    for p in (stopped, running):
                        self.assertIsNotNone(sample_value(page, "gometrics_gc_heap_allocs_bytes_total", p.pid))
                    self.assertEqual(own_value(page, "gometrics_serve_read_errors_total"), 0)
            finally:
                os.kill(stopped.pid, signal.SIGCONT)

    def test_every_process_mode_includes_ours_and_stays_valid(self):
        # Without --pid serve exports every process it may read, other
        # people's included: only ours is asserted on.
        with gmserve.Instrumented(["sleep", "60"]) as p, Serve() as srv:
            status, _, page = srv.get("/metrics")
            self.assertEqual(status, 200)
            self.assertIsNotNone(sample_value(page, "gometrics_gc_heap_allocs_bytes_total", p.pid))
            self.assertGreaterEqual(own_value(page, "gometrics_serve_processes"), 1)
            if PROMTOOL:
                self.assertEqual(promtool_check(page), "")

    def test_bad_arguments_are_one_line_and_status_2(self):
        for args in (["--listen", "nonsense"], ["--listen", "127.0.0.1:99999"], ["--namespace", "9bad-name"]):
            cp = gmtest.cli("serve", *args, timeout=20)
            self.assertEqual(cp.returncode, 2, (args, cp.stderr))
            self.assertEqual(len(cp.stderr.strip().splitlines()), 1, cp.stderr)

    def test_namespace_replaces_the_prefix(self):
        with gmserve.Instrumented(["sleep", "60"]) as p, Serve("--pid", p.pid, "--namespace", "native") as srv:
            _, _, page = srv.get("/metrics")
            self.assertIsNotNone(sample_value(page, "native_gc_heap_allocs_bytes_total", p.pid))
            self.assertNotIn("gometrics_", page)
            # The standard process metrics keep their names whatever the namespace.
            self.assertIsNotNone(sample_value(page, "process_resident_memory_bytes", p.pid))
            self.assertEqual(own_value(page, "native_serve_scrapes_total"), 1)

    def test_sigterm_stops_it_cleanly(self):
        with Serve("--pid", os.getpid()) as srv:
            self.assertEqual(srv.get("/metrics")[0], 200)
            srv.proc.send_signal(signal.SIGINT)
            self.assertEqual(srv.stop(), 0)


class HostileClients(unittest.TestCase):
    """What an adversarial review of serve's HTTP surface did to it."""

    @staticmethod
    def raw(port, request, timeout=20):
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(request)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data

    def test_a_range_gets_the_whole_page_and_nothing_after_it(self):
        # httplib sent the range unchecked: serve's heap after the page.
        with Serve("--pid", os.getpid()) as srv:
            whole = self.raw(srv.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            for spec in (b"bytes=0-99999999999", b"bytes=100000000-", b"bytes=-5"):
                got = self.raw(srv.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nRange: " + spec + b"\r\n\r\n")
                head, _, body = got.partition(b"\r\n\r\n")
                self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
                length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
                self.assertEqual(length, len(body))
                self.assertLess(abs(len(body) - len(whole.partition(b"\r\n\r\n")[2])), 200)

    def test_a_body_is_refused_unread(self):
        with Serve("--pid", os.getpid()) as srv:
            got = self.raw(srv.port, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n")
            self.assertTrue(got.startswith(b"HTTP/1.1 413"), got[:100])

    def test_clients_that_trickle_their_headers_hold_no_worker_nor_the_stop(self):
        # Twelve of them stopped every scrape, and one held SIGTERM for a minute.
        with Serve("--pid", os.getpid()) as srv:
            slow = []
            for _ in range(16):
                s = socket.create_connection(("127.0.0.1", srv.port))
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                slow.append(s)
            start = time.monotonic()
            status = None
            while time.monotonic() - start < 20 and status != 200:
                for s in slow:
                    try:
                        s.sendall(b"X-a: b\r\n")
                    except OSError:
                        pass
                try:
                    status = srv.get("/metrics", timeout=2)[0]
                except OSError:
                    status = None
            self.assertEqual(status, 200)
            self.assertLess(time.monotonic() - start, 12)  # the 5 s deadline, and a sweep a second
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(b"GET /metrics HTTP/1.1\r\n")
            start = time.monotonic()
            self.assertEqual(srv.stop(), 0)
            self.assertLess(time.monotonic() - start, 3)
            for c in slow + [s]:
                c.close()


if __name__ == "__main__":
    gmtest.main()
