"""redis-server under the agent, loaded by redis-benchmark on loopback: the
server's live metrics move while it serves, and it exits cleanly when told."""

import json
import os

import realapp
from realapp import app, gmtest, need, run_plain  # noqa: F401


class Redis(realapp.RealAppTest):
    def test_server_under_benchmark(self):
        bench = need("redis-benchmark")
        report = os.path.join(self.tempdir(), "server.json")
        proc, port, cli = realapp.start_redis(self, gmtest.agent_env({"GOMETRICS_REPORT": report}))
        try:
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


run_cli = realapp.redis_cli


if __name__ == "__main__":
    realapp.main()
