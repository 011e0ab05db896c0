"""`serve` speaks Go's net/http/pprof: the real `go tool pprof` fetches heap,
allocs and mutex profiles of native processes from /debug/pprof/ over HTTP,
delta profiles (seconds=N) show only what changed, and bad requests get a
400 with one line that `go tool pprof` shows."""

import gzip
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import gmserve
import gmtest
from gmserve import Serve
from gmtest import program

GO = shutil.which("go")
RATE = 32 * 1024  # mean bytes between heap samples
# "      flat  flat%   sum%        cum   cum%  name" rows of `pprof -top`.
TOP_ROW = re.compile(r"^\s*(-?[\d.]+)(\S*)\s+(-?[\d.]+)%\s+(-?[\d.]+)%\s+\S+\s+(-?[\d.]+)%\s+(.+?)\s*$")


def go_pprof_top(url, sample_index=None, extra=()):
    """{function: flat value} from `go tool pprof -top URL` (bytes for space, ns for delay)."""
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, HOME=home, PPROF_TMPDIR=home, GOFLAGS="", GOCACHE=os.path.join(home, "cache"))
        env.pop("LD_PRELOAD", None)
        args = [GO, "tool", "pprof", "-top", "-nodefraction=0"]
        if sample_index:
            args += [f"-sample_index={sample_index}",
                     "-unit=B" if "space" in sample_index else "-unit=ns" if sample_index == "delay" else "-unit=minimum"]
        cp = subprocess.run(args + list(extra) + [url], capture_output=True, text=True, timeout=120, env=env)
    if cp.returncode != 0:
        raise AssertionError(f"go tool pprof {url} failed: {cp.stderr[-2000:]}")
    flat = {}
    for line in cp.stdout.splitlines():
        m = TOP_ROW.match(line)
        if m:
            flat[m.group(6)] = flat.get(m.group(6), 0.0) + float(m.group(1))
    return flat, cp.stdout


def fetch(url):
    """(status, headers, raw body); HTTP errors are results."""
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def share(flat, a, b):
    total = flat.get(a, 0) + flat.get(b, 0)
    return flat.get(a, 0) / total if total else float("nan")


class Ready:
    """A program under the agent that prints "ready" once set up."""

    def __init__(self, args, env):
        self.spawned = gmserve.Instrumented([program(args[0]), *map(str, args[1:])], extra_env=env)

    def __enter__(self):
        proc = self.spawned.__enter__()
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise AssertionError(f"{self.spawned.proc.args} did not get ready: {line!r}")
        return proc

    def __exit__(self, *exc):
        self.spawned.__exit__(*exc)


@unittest.skipUnless(GO, "go tool pprof (golang-go) is needed: scripts/setup.sh test installs it")
class GoToolPprof(unittest.TestCase):
    """profile_sites (heap) and profile_sites (mutex), served together."""

    @classmethod
    def setUpClass(cls):
        cls.heap_app = Ready(["profile_sites", "heap", 24], {"GOMETRICS_PROFILE_RATE": str(RATE)})
        cls.mutex_app = Ready(["profile_sites", "mutex", 10], {"GOMETRICS_MUTEX_PROFILE_FRACTION": "1"})
        cls.heap = cls.heap_app.__enter__()
        cls.mutex = cls.mutex_app.__enter__()
        cls.serve = Serve("--pid", cls.heap.pid, "--pid", cls.mutex.pid)
        cls.serve.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.serve.stop()
        cls.heap_app.__exit__(None, None, None)
        cls.mutex_app.__exit__(None, None, None)

    def test_heap_in_use_3_to_1(self):
        flat, out = go_pprof_top(f"{self.serve.url}/debug/pprof/heap?pid={self.heap.pid}")
        # No -sample_index: Go's default for heap is inuse_space, and ours.
        self.assertIn("inuse_space", out)
        self.assertAlmostEqual(share(flat, "alpha_site", "beta_site"), 0.75, delta=0.10, msg=out)
        self.assertNotIn("gamma_site", flat)  # freed
        bytes_flat, _ = go_pprof_top(f"{self.serve.url}/debug/pprof/heap?pid={self.heap.pid}", "inuse_space")
        live = bytes_flat.get("alpha_site", 0) + bytes_flat.get("beta_site", 0)
        self.assertAlmostEqual(live / (24 * 2**20 * 520 / 512), 1.0, delta=0.2, msg=bytes_flat)

    def test_allocs_shows_the_freed_site(self):
        flat, out = go_pprof_top(f"{self.serve.url}/debug/pprof/allocs?pid={self.heap.pid}")
        self.assertIn("alloc_space", out)
        self.assertGreater(flat.get("gamma_site", 0), 0, out)
        self.assertGreater(flat.get("alpha_site", 0), 0, out)

    def test_mutex_delay_3_to_1(self):
        flat, out = go_pprof_top(f"{self.serve.url}/debug/pprof/mutex?pid={self.mutex.pid}", "delay")
        self.assertAlmostEqual(share(flat, "alpha_lock_site", "beta_lock_site"), 0.75, delta=0.10, msg=out)
        contentions, _ = go_pprof_top(f"{self.serve.url}/debug/pprof/mutex?pid={self.mutex.pid}", "contentions")
        self.assertEqual(contentions.get("alpha_lock_site"), 10, contentions)

    def test_headers_and_body_are_net_http_pprof_s(self):
        for name in ("heap", "allocs", "mutex"):
            pid = self.mutex.pid if name == "mutex" else self.heap.pid
            status, headers, body = fetch(f"{self.serve.url}/debug/pprof/{name}?pid={pid}")
            self.assertEqual(status, 200, body[:300])
            self.assertEqual(headers["Content-Type"], "application/octet-stream")
            self.assertEqual(headers["Content-Disposition"], f'attachment; filename="{name}"')
            self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
            self.assertGreater(len(gzip.decompress(body)), 100)

    def test_debug_1_is_text(self):
        status, headers, body = fetch(f"{self.serve.url}/debug/pprof/heap?pid={self.heap.pid}&debug=1")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "text/plain; charset=utf-8")
        self.assertIsNone(headers["Content-Disposition"])
        text = body.decode()
        self.assertIn("inuse_space:", text)
        self.assertIn("alpha_site (", text)
        self.assertIn("profile_sites.c:", text)
        self.assertNotIn("gamma_site", text)

    def test_bad_requests_are_400_with_one_line(self):
        base = f"{self.serve.url}/debug/pprof"
        pid = self.heap.pid
        cases = {
            f"{base}/heap?pid={pid}&seconds=0": 'invalid value for "seconds"',
            f"{base}/heap?pid={pid}&seconds=-3": 'invalid value for "seconds"',
            f"{base}/heap?pid={pid}&seconds=abc": 'invalid value for "seconds"',
            f"{base}/heap?pid={pid}&seconds=60": "WriteTimeout",  # serve's default write timeout is 60 s
            f"{base}/heap?pid={pid}&seconds=1&debug=1": "incompatible",
            f"{base}/heap?pid={pid}&debug=x": 'invalid value for "debug"',
            f"{base}/heap?pid=12ab": 'invalid value for "pid"',
            f"{base}/heap": f"{pid} (profile_sites)",  # two processes: the list to choose from
        }
        for url, expected in cases.items():
            status, headers, body = fetch(url)
            text = body.decode()
            self.assertEqual(status, 400, (url, text))
            self.assertEqual(headers["X-Go-Pprof"], "1", url)
            self.assertTrue(headers["Content-Type"].startswith("text/plain"), url)
            self.assertEqual(len(text.strip().splitlines()), 1, (url, text))
            self.assertIn(expected, text, url)
        self.assertIn(str(self.mutex.pid), fetch(f"{base}/heap")[2].decode())
        # Not served: other profiles, other processes.
        for url in (f"{base}/goroutine?pid={pid}", f"{base}/profile?pid={pid}", f"{base}/heap?pid={os.getpid()}"):
            status, headers, body = fetch(url)
            self.assertEqual(status, 404, (url, body))
            self.assertEqual(len(body.decode().strip().splitlines()), 1, (url, body))

    def test_go_pprof_shows_serve_s_error(self):
        with tempfile.TemporaryDirectory() as home:
            env = dict(os.environ, HOME=home, PPROF_TMPDIR=home, GOFLAGS="", GOCACHE=os.path.join(home, "cache"))
            cp = subprocess.run([GO, "tool", "pprof", "-top", f"{self.serve.url}/debug/pprof/heap"],
                                capture_output=True, text=True, timeout=120, env=env)
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("choose the process with ?pid=P", cp.stderr)

    def test_index_links_each_profile_of_each_process(self):
        status, headers, body = fetch(f"{self.serve.url}/debug/pprof/")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/html"))
        page = body.decode()
        for pid in (self.heap.pid, self.mutex.pid):
            for name in ("heap", "allocs", "mutex"):
                self.assertIn(f'href="{name}?pid={pid}"', page)
        # Without the slash, as Go's ServeMux does.
        req = urllib.request.Request(f"{self.serve.url}/debug/pprof")
        with urllib.request.urlopen(req, timeout=20) as r:
            self.assertEqual(r.url, f"{self.serve.url}/debug/pprof/")


@unittest.skipUnless(GO, "go tool pprof (golang-go) is needed: scripts/setup.sh test installs it")
class OneProcess(unittest.TestCase):
    def test_pid_is_implicit_and_delta_shows_only_the_new_site(self):
        with Ready(["phases", 8], {"GOMETRICS_PROFILE_RATE": str(RATE)}) as app, Serve("--pid", app.pid) as srv:
            whole, out = go_pprof_top(f"{srv.url}/debug/pprof/heap", "inuse_space")
            self.assertGreater(whole.get("first_phase_site", 0), 0, out)

            # A 3 s delta, during which the program allocates 8 MiB more in its second phase.
            result = {}
            fetcher = threading.Thread(target=lambda: result.update(
                zip(("status", "headers", "body"), fetch(f"{srv.url}/debug/pprof/allocs?seconds=3"))))
            fetcher.start()
            time.sleep(1)
            app.stdin.write("go\n")
            app.stdin.flush()
            self.assertEqual(app.stdout.readline().strip(), "done")
            fetcher.join(timeout=60)
            self.assertEqual(result["status"], 200, result.get("body", b"")[:300])
            self.assertEqual(result["headers"]["Content-Disposition"], 'attachment; filename="allocs-delta"')
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "allocs-delta.pb.gz")
                with open(path, "wb") as f:
                    f.write(result["body"])
                delta, out = go_pprof_top(path, "alloc_space")
            self.assertNotIn("first_phase_site", delta, out)
            self.assertAlmostEqual(delta.get("second_phase_site", 0) / (8 * 2**20 * 520 / 512), 1.0, delta=0.25,
                                   msg=out)

            # And through go tool pprof's own -seconds, which adds seconds=1 to the URL.
            quiet, out = go_pprof_top(f"{srv.url}/debug/pprof/heap", "inuse_space", extra=["-seconds", "1"])
            self.assertIn("delta", out)
            self.assertNotIn("first_phase_site", quiet, out)
            self.assertNotIn("second_phase_site", quiet, out)

    def test_sigterm_cuts_a_delta_short(self):
        with Ready(["phases", 1], {}) as app, Serve("--pid", app.pid) as srv:
            result = {}

            def wait_for_delta():
                try:
                    result["status"] = fetch(f"{srv.url}/debug/pprof/heap?seconds=50")[0]
                except OSError:
                    result["status"] = None  # the connection closed with the server

            fetcher = threading.Thread(target=wait_for_delta)
            fetcher.start()
            time.sleep(1)
            start = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            self.assertEqual(srv.stop(), 0, srv.stderr)
            self.assertLess(time.monotonic() - start, 10)
            fetcher.join(timeout=30)
            self.assertIn(result.get("status"), (503, None))

    def test_write_timeout_caps_seconds(self):
        with Ready(["phases", 1], {}) as app, Serve("--pid", app.pid, "--write-timeout", 5) as srv:
            status, _, body = fetch(f"{srv.url}/debug/pprof/heap?seconds=5")
            self.assertEqual(status, 400, body)
            self.assertIn("below 5", body.decode())
            status, _, body = fetch(f"{srv.url}/debug/pprof/heap?seconds=1")
            self.assertEqual(status, 200, body[:300])

    def test_unprofiled_process_is_404_with_the_reason(self):
        env = {"GOMETRICS_PROFILE_RATE": "0", "GOMETRICS_MUTEX_PROFILE_FRACTION": "0"}
        with Ready(["phases", 1], env) as app, Serve("--pid", app.pid) as srv:
            status, headers, body = fetch(f"{srv.url}/debug/pprof/heap")
            self.assertEqual(status, 404)
            self.assertIn("does not profile", body.decode())
            self.assertEqual(headers["X-Go-Pprof"], "1")


if __name__ == "__main__":
    gmtest.main()
