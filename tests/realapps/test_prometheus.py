"""A real Prometheus server (Debian's package) scrapes `gometrics-cli serve`:
the series of an instrumented program, with its pid, reach Prometheus's
query API with plausible values."""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import gmtest
import gmserve
from gmserve import Serve

DEADLINE_S = 60


def install_prometheus():
    """Path of the prometheus binary, installing Debian's package if missing;
    (None, why) when it cannot be installed."""
    path = shutil.which("prometheus")
    if path:
        return path, ""
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        cp = subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"],
                            capture_output=True, text=True, timeout=600, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"apt-get install prometheus failed: {e}"
    path = shutil.which("prometheus")
    return (path, "") if path else (None, f"apt-get install prometheus failed: {(cp.stdout + cp.stderr)[-500:]}")


@contextlib.contextmanager
def running_prometheus(binary, tmp, target_port):
    """A real Prometheus scraping 127.0.0.1:target_port every second, its
    data and log in tmp; yields its process, the port of its HTTP API and its log file."""
    config = os.path.join(tmp, "prometheus.yml")
    with open(config, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "scrape_configs:\n  - job_name: gometrics\n    static_configs:\n"
                f"      - targets: ['127.0.0.1:{target_port}']\n")
    port = free_port()
    with open(os.path.join(tmp, "prometheus.log"), "w+") as log:
        prom = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={os.path.join(tmp, 'data')}",
                                 f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
        try:
            yield prom, port, log
        finally:
            prom.terminate()
            try:
                prom.wait(timeout=30)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RealPrometheus(unittest.TestCase):
    def setUp(self):
        self.prometheus, why = install_prometheus()
        if not self.prometheus:
            print(f"skipping: the prometheus package cannot be installed here: {why}", file=sys.stderr)
            self.skipTest(f"prometheus cannot be installed: {why}")

    def query(self, port, promql):
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                doc = json.load(r)
        except OSError:
            return []  # not up yet
        return doc["data"]["result"] if doc.get("status") == "success" else []

    def test_prometheus_scrapes_serve(self):
        # An idle Python: megabytes allocated at start-up, then no CPU taken
        # from a busy machine.
        idle_python = [gmtest.PYTHON, "-c", "import time; time.sleep(120)"]
        with tempfile.TemporaryDirectory() as tmp, gmserve.Instrumented(idle_python) as app, \
                Serve("--pid", app.pid) as srv:
            with running_prometheus(self.prometheus, tmp, srv.port) as (prom, port, log):
                series = f'gometrics_gc_heap_allocs_bytes_total{{pid="{app.pid}"}}'
                deadline = time.monotonic() + DEADLINE_S
                result = []
                while time.monotonic() < deadline and not result:
                    self.assertIsNone(prom.poll(), "prometheus exited early")
                    result = self.query(port, series)
                    time.sleep(0.5)
                log.seek(0)
                self.assertTrue(result, f"no {series} after {DEADLINE_S}s; prometheus said:\n{log.read()[-3000:]}")
                self.assertEqual(len(result), 1)
                labels = result[0]["metric"]
                self.assertEqual(labels["job"], "gometrics")
                with open(f"/proc/{app.pid}/comm") as f:
                    self.assertEqual(labels["comm"], f.read().strip())
                allocated = float(result[0]["value"][1])
                # Python's start-up allocates megabytes: more than 100 KiB, far less than a TiB.
                self.assertGreater(allocated, 100 << 10)
                self.assertLess(allocated, 1 << 40)

                # A histogram made it through as one: the median allocation of
                # Python (mostly small objects) lies between 1 B and 16 KiB.
                median = self.query(port, "histogram_quantile(0.5, "
                                          f'gometrics_gc_heap_allocs_by_size_bytes_bucket{{pid="{app.pid}"}})')
                self.assertEqual(len(median), 1)
                self.assertGreater(float(median[0]["value"][1]), 1)
                self.assertLess(float(median[0]["value"][1]), 16384)

                # The scrape itself is healthy, and serve's own metrics are there.
                up = self.query(port, 'up{job="gometrics"}')
                self.assertEqual(up[0]["value"][1], "1")
                self.assertEqual(float(self.query(port, "gometrics_serve_processes")[0]["value"][1]), 1)


if __name__ == "__main__":
    gmtest.main()
