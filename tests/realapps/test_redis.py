"""redis-server under the agent, loaded by redis-benchmark on loopback: the
server's live metrics move while it serves, and it exits cleanly when told."""

import json
import os
import subprocess

import realapp
from realapp import app, gmtest, need, run_plain  # noqa: F401

import time


class Redis(realapp.RealAppTest):
    def test_server_under_benchmark(self):
        server, bench, cli = need("redis-server"), need("redis-benchmark"), need("redis-cli")
        port = str(realapp.free_port())
        d = self.tempdir()
        report = os.path.join(d, "server.json")
        proc = subprocess.Popen([server, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                 "--dir", d, "--protected-mode", "no", "--daemonize", "no"],
                                env=gmtest.agent_env({"GOMETRICS_REPORT": report}), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            while run_cli(cli, port, "ping") != "PONG":
                self.assertIsNone(proc.poll(), "redis-server exited early")
                self.assertLess(time.monotonic(), deadline, "redis-server did not answer")
                time.sleep(0.05)
            before = gmtest.dump(proc.pid)["/gc/heap/allocs:objects"]
            cp, bench_m = self.run_app([bench, "-h", "127.0.0.1", "-p", port, "-n", "20000", "-c", "8",
                                        "-t", "set,get,lpush,lpop", "-q"], timeout=90)
            for op in ("SET", "GET", "LPUSH", "LPOP"):
                self.assertRegex(cp.stdout, rf"{op}: [0-9.]+ requests per second")
            self.assert_sane(bench_m, min_allocs=1000)
            self.assertEqual(run_cli(cli, port, "set", "gometrics", "42"), "OK")
            self.assertEqual(run_cli(cli, port, "get", "gometrics"), "42")
            after = gmtest.dump(proc.pid)["/gc/heap/allocs:objects"]
            self.assertGreater(after - before, 20000, "80,000 requests and the server allocated so little?")
            run_cli(cli, port, "shutdown", "nosave")
            self.assertEqual(proc.wait(timeout=20), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=20)
        stderr = proc.stderr.read()
        self.assertNotIn("gometrics:", stderr)
        self.assertFalse(os.path.exists(f"/dev/shm/gometrics.{proc.pid}"))
        with open(report) as f:
            m = gmtest.metrics(json.load(f))
        self.assertGreaterEqual(m["/gc/heap/allocs:objects"], after)
        self.assert_sane(m)


def run_cli(cli, port, *args):
    """redis-cli without the agent; its output stripped ("" when it fails)."""
    cp = subprocess.run([cli, "-h", "127.0.0.1", "-p", port, *args], capture_output=True, text=True, timeout=10,
                        env=realapp.plain_env())
    return cp.stdout.strip() if cp.returncode == 0 else ""


if __name__ == "__main__":
    realapp.main()
