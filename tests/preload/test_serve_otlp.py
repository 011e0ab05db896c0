"""`serve --otlp` pushes OTLP/HTTP protobuf that the OpenTelemetry project's
own generated decoder (@opentelemetry/otlp-transformer from npm, its
protobufjs code for opentelemetry-proto) reads back exactly: resource
attributes, semantic-convention names, sums, gauges and histograms; the
OTEL_EXPORTER_OTLP_* variables choose where and with which headers; a
collector that fails is retried with backoff, logged once, and never slows
the HTTP side."""

import gzip
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import gmserve
import gmtest

# The last release whose package ships protobufjs's generated decoders
# (later ones only encode).
OTLP_TRANSFORMER = "@opentelemetry/otlp-transformer@0.57.2"
NPM = shutil.which("npm")
NODE = shutil.which("node")
DECODER_DIR = os.path.join(os.environ.get("GOMETRICS_BUILD_ROOT", tempfile.gettempdir()), "otlp-decoder")
GENERATED = os.path.join(DECODER_DIR, "node_modules", "@opentelemetry", "otlp-transformer", "build", "src",
                         "generated", "root.js")
DECODE_JS = r"""
const root = require(process.argv[1]);  // node -e SCRIPT PATH
const T = root.opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest;
const buf = require("fs").readFileSync(0);
const msg = T.decode(buf);
const out = T.toObject(msg, {longs: String, enums: String, defaults: false, arrays: true});
// Re-encoded by the same code, the bytes come back identical: every field
// is one the schema knows, with its type, in protobuf's own order.
out.reencodedIdentical = Buffer.from(T.encode(msg).finish()).equals(buf);
console.log(JSON.stringify(out));
"""


def decoder():
    """Path of the generated root.js, installed from npm on first use; (None, why) when impossible."""
    if os.path.exists(GENERATED):
        return GENERATED, ""
    if not (NPM and NODE):
        return None, "node and npm are needed (scripts/setup.sh test installs them)"
    os.makedirs(DECODER_DIR, exist_ok=True)
    cp = subprocess.run([NPM, "install", "--prefix", DECODER_DIR, "--no-audit", "--no-fund", "--loglevel=error",
                         OTLP_TRANSFORMER], capture_output=True, text=True, timeout=600)
    if not os.path.exists(GENERATED):
        return None, f"npm install {OTLP_TRANSFORMER} failed: {(cp.stdout + cp.stderr)[-1000:]}"
    return GENERATED, ""


def decode(body):
    cp = subprocess.run([NODE, "-e", DECODE_JS, GENERATED], input=body, capture_output=True, timeout=60)
    if cp.returncode != 0:
        raise AssertionError(f"the OpenTelemetry decoder rejects the request: {cp.stderr.decode()[-2000:]}")
    return json.loads(cp.stdout)


class Receiver:
    """An OTLP/HTTP endpoint on a free port recording each POST; answers
    `statuses` in turn, then 200."""

    def __init__(self, statuses=()):
        self.requests = []
        self.statuses = list(statuses)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"time": time.monotonic(), "path": self.path, "headers": dict(self.headers),
                                       "body": body})
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def wait(self, n, timeout):
        gmserve.wait_until(lambda: len(self.requests) >= n, timeout, step=0.05)
        return self.requests[:n]


class ServeEnv(gmserve.Serve):
    """serve with extra environment variables."""

    def __init__(self, env, *args):
        self.proc = subprocess.Popen([gmtest.CLI, "serve", "--listen", "127.0.0.1:0", *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, **env))
        self.port = None
        self.stderr = ""
        self.returncode = None


def own_failures(srv):
    """serve's own count of failed OTLP pushes, from its /metrics page."""
    status, _, page = srv.get("/metrics", timeout=5)
    return gmserve.own_value(page, "gometrics_serve_otlp_export_failures_total") if status == 200 else None


def otlp_name(go_name):
    """The rule of otlp.h for a Go metric outside the conventions."""
    path, unit = go_name.split(":")
    return "gometrics" + path.replace("/", ".") + "." + unit.replace("/", "_per_").replace("*", "_")


CONVENTIONS = {
    "/cpu/classes/user:cpu-seconds": "process.cpu.time", "/cpu/classes/system:cpu-seconds": "process.cpu.time",
    "/process/memory/rss:bytes": "process.memory.usage", "/sched/threads/total:threads": "process.thread.count",
    "/process/fds/open:fds": "process.unix.file_descriptor.count",
    "/process/ctxswitches/voluntary:switches": "process.context_switches",
    "/process/ctxswitches/involuntary:switches": "process.context_switches",
    "/process/faults/major:faults": "process.paging.faults", "/process/faults/minor:faults": "process.paging.faults",
    "/process/uptime:seconds": "process.uptime",
}


def attrs(kvs):
    return {kv["key"]: kv["value"].get("stringValue", kv["value"].get("intValue")) for kv in kvs or []}


class Decoded(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        path, why = decoder()
        if not path:
            raise unittest.SkipTest(why)

    def test_what_the_opentelemetry_decoder_reads(self):
        sleep_cmd = ["sleep", "60"]
        py_cmd = ["/usr/bin/python3", "-c", "import time; time.sleep(60)"]
        env = {"OTEL_SERVICE_NAME": "checkout", "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc, x-team=native",
               "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test,service.name=ignored"}
        # Compared with /proc below: idle single-threaded programs need the thread for fresh /proc figures.
        thread = {"GOMETRICS_PUBLISHER": "thread"}
        with Receiver() as rx, gmserve.Instrumented(sleep_cmd, thread) as sl, gmserve.Instrumented(py_cmd, thread) as py, \
                ServeEnv(env, "--pid", sl.pid, "--pid", py.pid, "--otlp", f"http://127.0.0.1:{rx.port}",
                         "--otlp-interval", 1) as srv:
            requests = rx.wait(1, 30)
            if not requests:
                srv.stop()
                self.fail(f"no OTLP request in 30 s: {srv.stderr}")
            _, _, docs = srv.get("/api/v1/processes")
            docs = {d["pid"]: d for d in json.loads(docs)}
            facts = {}
            for p in (sl, py):
                with open(f"/proc/{p.pid}/stat") as f:
                    stat = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{p.pid}/status") as f:
                    vmrss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
                facts[p.pid] = {"exe": os.path.basename(os.readlink(f"/proc/{p.pid}/exe")), "vmrss": vmrss,
                                "cpu": (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")}
        req = requests[0]
        self.assertEqual(req["path"], "/v1/metrics")
        self.assertEqual(req["headers"]["Content-Type"], "application/x-protobuf")
        self.assertEqual(req["headers"]["authorization"], "Bearer abc")
        self.assertEqual(req["headers"]["x-team"], "native")
        doc = decode(req["body"])
        self.assertTrue(doc["reencodedIdentical"])
        by_pid = {int(attrs(rm["resource"]["attributes"])["process.pid"]): rm for rm in doc["resourceMetrics"]}
        self.assertEqual(set(by_pid), {sl.pid, py.pid})

        for proc, cmd in ((sl, sleep_cmd), (py, py_cmd)):
            rm = by_pid[proc.pid]
            res = attrs(rm["resource"]["attributes"])
            self.assertEqual(res["service.name"], "checkout")  # OTEL_SERVICE_NAME wins
            self.assertEqual(res["deployment.environment"], "test")
            self.assertEqual(res["host.name"], socket.gethostname())
            self.assertEqual(res["process.executable.name"], facts[proc.pid]["exe"])
            self.assertEqual(res["process.command_line"], " ".join(cmd))
            (scope,) = rm["scopeMetrics"]
            self.assertEqual(scope["scope"]["name"], "gometrics")
            metrics = {m["name"]: m for m in scope["metrics"]}
            self.assertEqual(len(metrics), len(scope["metrics"]))  # one metric per name

            # Every Go metric is there once, under its convention or its own name.
            go = {d["name"]: d for d in docs[proc.pid]["metrics"]}
            expected = {CONVENTIONS.get(name) or otlp_name(name) for name in go}
            self.assertEqual(set(metrics), expected)
            start = str(docs[proc.pid]["start_time_ns"])

            cpu = metrics["process.cpu.time"]
            self.assertEqual(cpu["unit"], "s")
            self.assertTrue(cpu["sum"]["isMonotonic"])
            self.assertEqual(cpu["sum"]["aggregationTemporality"], "AGGREGATION_TEMPORALITY_CUMULATIVE")
            modes = {attrs(p["attributes"])["cpu.mode"]: p for p in cpu["sum"]["dataPoints"]}
            self.assertEqual(set(modes), {"user", "system"})
            self.assertEqual(modes["user"]["startTimeUnixNano"], start)
            self.assertAlmostEqual(modes["user"].get("asDouble", 0) + modes["system"].get("asDouble", 0),
                                   facts[proc.pid]["cpu"], delta=0.05)

            rss = metrics["process.memory.usage"]
            self.assertEqual(rss["unit"], "By")
            self.assertFalse(rss["sum"].get("isMonotonic", False))
            self.assertAlmostEqual(int(rss["sum"]["dataPoints"][0]["asInt"]) / facts[proc.pid]["vmrss"], 1, delta=0.2)
            self.assertEqual(metrics["process.thread.count"]["sum"]["dataPoints"][0]["asInt"], "1")
            self.assertIn("gauge", metrics["process.uptime"])

            # Own names: a counter, a gauge, a histogram.
            allocs = metrics["gometrics.gc.heap.allocs.bytes"]
            self.assertEqual(allocs["unit"], "By")
            self.assertTrue(allocs["sum"]["isMonotonic"])
            self.assertEqual(int(allocs["sum"]["dataPoints"][0]["asInt"]), go["/gc/heap/allocs:bytes"]["value"])
            total = metrics["gometrics.memory.classes.total.bytes"]
            self.assertEqual(int(total["gauge"]["dataPoints"][0]["asInt"]), go["/memory/classes/total:bytes"]["value"])
            hist = metrics["gometrics.gc.heap.allocs-by-size.bytes"]["histogram"]
            self.assertEqual(hist["aggregationTemporality"], "AGGREGATION_TEMPORALITY_CUMULATIVE")
            (point,) = hist["dataPoints"]
            counts = [int(c) for c in point["bucketCounts"]]
            self.assertEqual(len(counts), len(point["explicitBounds"]) + 1)
            self.assertEqual(point["explicitBounds"], sorted(point["explicitBounds"]))
            self.assertEqual(sum(counts), int(point["count"]))
            self.assertEqual(int(point["count"]), go["/gc/heap/allocs:objects"]["value"])
            self.assertEqual(point["sum"], go["/gc/heap/allocs:bytes"]["value"])
            # Go's buckets hold [lo, hi), OTLP's (lo, hi]: each bound is just below Go's edge.
            edges = go["/gc/heap/allocs-by-size:bytes"]["value"]["buckets"]
            finite = [e for e in edges if isinstance(e, (int, float))]
            self.assertLess(point["explicitBounds"][-1], finite[-1])
            self.assertGreater(point["explicitBounds"][-1], finite[-1] * (1 - 1e-9))

    def test_endpoint_variables(self):
        cases = (({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:{port}/base/"}, "/base/v1/metrics"),
                 ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1/",
                   "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:{port}/custom/path",
                   "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}, "/custom/path"))
        for env, path in cases:
            with Receiver() as rx, gmserve.Instrumented(["sleep", "60"]) as sl:
                env = {k: v.format(port=rx.port) for k, v in env.items()}
                with ServeEnv(env, "--pid", sl.pid, "--otlp", "--otlp-interval", 1):
                    requests = rx.wait(1, 30)
                self.assertTrue(requests, env)
                self.assertEqual(requests[0]["path"], path)
                body = requests[0]["body"]
                if "OTEL_EXPORTER_OTLP_COMPRESSION" in env:
                    self.assertEqual(requests[0]["headers"]["Content-Encoding"], "gzip")
                    body = gzip.decompress(body)
                else:
                    self.assertNotIn("Content-Encoding", requests[0]["headers"])
                self.assertTrue(decode(body)["reencodedIdentical"])


class Failures(unittest.TestCase):
    def test_backoff_logged_once_and_http_never_waits(self):
        # The collector answers 503 three times: retried after 1, 2 and 4 s
        # within the 10 s interval, then taken.
        with Receiver(statuses=[503, 503, 503]) as rx, gmserve.Instrumented(["sleep", "60"]) as sl, \
                gmserve.Serve("--pid", sl.pid, "--otlp", f"http://127.0.0.1:{rx.port}/v1/metrics",
                              "--otlp-interval", 10) as srv:
            slowest = 0
            deadline = time.monotonic() + 40
            while len(rx.requests) < 4 and time.monotonic() < deadline:
                start = time.monotonic()
                self.assertEqual(srv.get("/metrics")[0], 200)
                slowest = max(slowest, time.monotonic() - start)
                time.sleep(0.2)
            # The fourth push is counted once serve has the collector's answer.
            gmserve.wait_until(lambda: gmserve.own_value(srv.get("/metrics")[2],
                                                         "gometrics_serve_otlp_exports_total") == 1, 10)
            _, _, page = srv.get("/metrics")
            srv.stop()
        if shutil.which("promtool"):
            cp = subprocess.run(["promtool", "check", "metrics"], input=page, capture_output=True, text=True)
            self.assertEqual((cp.returncode, cp.stdout + cp.stderr), (0, ""))
        # serve's own counts of the exporter, for alerts on it.
        self.assertEqual(gmserve.own_value(page, "gometrics_serve_otlp_export_failures_total"), 3, page[-600:])
        self.assertEqual(gmserve.own_value(page, "gometrics_serve_otlp_exports_total"), 1)
        times = [r["time"] for r in rx.requests[:4]]
        self.assertEqual(len(times), 4, srv.stderr)
        gaps = [b - a for a, b in zip(times, times[1:])]
        for gap, expected in zip(gaps, (1, 2, 4)):
            self.assertAlmostEqual(gap, expected, delta=0.6, msg=gaps)
        self.assertEqual(srv.stderr.count("OTLP export failed"), 1, srv.stderr)
        self.assertIn("HTTP 503", srv.stderr)
        self.assertEqual(srv.stderr.count("works again"), 1, srv.stderr)
        self.assertLess(slowest, 1.0)

    def test_dead_collector_leaves_serve_serving(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
        with gmserve.Instrumented(["sleep", "60"]) as sl, \
                gmserve.Serve("--pid", sl.pid, "--otlp", f"http://127.0.0.1:{closed}", "--otlp-interval", 1) as srv:
            time.sleep(3.5)
            start = time.monotonic()
            status, _, page = srv.get("/metrics")
            self.assertEqual(status, 200)
            self.assertLess(time.monotonic() - start, 1.0)
            self.assertEqual(srv.stop(), 0)
        self.assertEqual(srv.stderr.count("OTLP export failed"), 1, srv.stderr)

    def test_sigterm_does_not_wait_for_a_silent_collector(self):
        # It takes the request and never answers: serve still stops at once.
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(4)
            port = silent.getsockname()[1]
            with gmserve.Instrumented(["sleep", "60"]) as sl, \
                    gmserve.Serve("--pid", sl.pid, "--otlp", f"http://127.0.0.1:{port}", "--otlp-interval", 1) as srv:
                conn, _ = silent.accept()  # the first push, left unanswered
                try:
                    start = time.monotonic()
                    self.assertEqual(srv.stop(), 0, srv.stderr)
                    self.assertLess(time.monotonic() - start, 3)
                finally:
                    conn.close()

    def test_a_collector_that_trickles_its_answer_does_not_hold_the_pushes(self):
        # The timeout bounded each read, not the export: a byte every second
        # held the push thread for good, silently; a long answer was kept whole.
        def trickle(conn):
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 100000\r\n\r\n")
                for _ in range(100):
                    conn.sendall(b"x")
                    time.sleep(1)
            except OSError:
                pass
            finally:
                conn.close()

        with socket.socket() as collector:
            collector.bind(("127.0.0.1", 0))
            collector.listen(8)
            port = collector.getsockname()[1]
            threading.Thread(target=lambda: [threading.Thread(target=trickle, args=(collector.accept()[0],),
                                                              daemon=True).start() for _ in range(8)],
                             daemon=True).start()
            with gmserve.Instrumented(["sleep", "60"]) as sl, \
                    ServeEnv({"OTEL_EXPORTER_OTLP_TIMEOUT": "2000"}, "--pid", sl.pid, "--otlp",
                             f"http://127.0.0.1:{port}", "--otlp-interval", 1) as srv:
                gmserve.wait_until(lambda: (sample := own_failures(srv)) is not None and sample >= 1, 15, step=0.2)
                self.assertEqual(srv.stop(), 0)
        self.assertIn("no whole answer within the timeout", srv.stderr)

    def test_bad_configuration_is_one_line_and_status_2(self):
        cases = ((["--otlp", "https://collector:4318"], {}, "only http://"),
                 (["--otlp", "collector:4318"], {}, "not an http:// URL"),
                 (["--otlp", "http://[::1"], {}, "not a host[:port]"),
                 (["--otlp"], {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:43x8"}, "not a host[:port]"),
                 (["--otlp"], {"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, "KEY=VALUE"),
                 (["--otlp"], {"OTEL_METRIC_EXPORT_INTERVAL": "soon"}, "OTEL_METRIC_EXPORT_INTERVAL"),
                 (["--otlp-interval", "5"], {}, "needs --otlp"))
        for args, env, text in cases:
            cp = subprocess.run([gmtest.CLI, "serve", "--listen", "127.0.0.1:0", *args], capture_output=True,
                                text=True, timeout=20, env=dict(os.environ, **env))
            self.assertEqual(cp.returncode, 2, (args, env, cp.stderr))
            self.assertEqual(len(cp.stderr.strip().splitlines()), 1, cp.stderr)
            self.assertIn(text, cp.stderr)


if __name__ == "__main__":
    gmtest.main()
