"""gometrics-cli attach and detach on real programs started without the agent,
while they work: Debian's python3 in a loop (non-PIE, malloc's canonical PLT
entry in the executable) and redis-server under redis-benchmark on loopback.
No error, no crash, every request answered, metrics published while
attached, the same output as without."""

import subprocess
import threading
import time

import realapp
from realapp import gmtest, need

LOOP = r"""
import sys
for line in sys.stdin:
    n = int(line)
    words = [str(i) * 3 for i in range(n)]
    index = {w: len(w) for w in words}
    print(n, sum(index.values()), len(" ".join(words)), flush=True)
"""


def attach(test, pid):
    cp = gmtest.cli("attach", pid, timeout=60)
    test.assertEqual(cp.returncode, 0, cp.stderr)
    test.assertIn(f"attached to process {pid}", cp.stdout)


def detach(test, pid):
    cp = gmtest.cli("detach", pid, timeout=60)
    test.assertEqual(cp.returncode, 0, cp.stderr)
    test.assertIn(f"detached from process {pid}", cp.stdout)


def assert_consistent(test, m):
    allocs, frees = m["/gc/heap/allocs:objects"], m["/gc/heap/frees:objects"]
    test.assertLessEqual(frees, allocs)
    test.assertEqual(m["/gc/heap/objects:objects"], allocs - frees)
    # Live bytes: the blocks since the attach, and the allocator's figure of
    # the heap from before it, which both programs have (python's objects,
    # redis's dictionaries), less what of it they freed since.
    before = m["/gc/heap/live-before-attach:bytes"]
    test.assertGreater(before, 0, "the heap from before the attach is missing")
    test.assertEqual(m["/gc/heap/live:bytes"], m["/gc/heap/allocs:bytes"] - m["/gc/heap/frees:bytes"] + before)


class AttachApps(realapp.RealAppTest):
    def test_python_loop(self):
        python = need("python3")
        inputs = [1000 + 700 * i for i in range(12)]
        expected = realapp.run_plain([python, "-c", LOOP], input="".join(f"{n}\n" for n in inputs)).stdout.splitlines()
        proc = subprocess.Popen([python, "-c", LOOP], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, bufsize=1, env=realapp.plain_env())
        out = []

        def ask(n):
            proc.stdin.write(f"{n}\n")
            proc.stdin.flush()
            out.append(proc.stdout.readline().strip())

        try:
            for n in inputs[:3]:
                ask(n)
            attach(self, proc.pid)
            for n in inputs[3:6]:
                ask(n)
            m = gmtest.dump(proc.pid)
            self.assertGreater(m["/gc/heap/allocs:objects"], 3, "python3 allocated nothing through malloc?")
            assert_consistent(self, m)
            detach(self, proc.pid)
            for n in inputs[6:9]:
                ask(n)
            attach(self, proc.pid)
            for n in inputs[9:]:
                ask(n)
            assert_consistent(self, gmtest.dump(proc.pid))
            detach(self, proc.pid)
            proc.stdin.close()
            self.assertEqual(proc.wait(timeout=30), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(out, expected)
        self.assertEqual(proc.stderr.read(), "")

    def test_redis_under_benchmark(self):
        bench = need("redis-benchmark")
        proc, port, cli = realapp.start_redis(self, realapp.plain_env())
        try:
            result = {}

            def load():
                result["cp"] = subprocess.run([bench, "-h", "127.0.0.1", "-p", port, "-n", "100000", "-c", "8",
                                               "-t", "set,get,lpush,lpop", "-q"], capture_output=True, text=True,
                                              timeout=120, env=realapp.plain_env())

            worker = threading.Thread(target=load)
            worker.start()
            cycles = 0
            most = 0  # allocations one attach saw: the first may come before the benchmark's first request
            while worker.is_alive() and cycles < 20:
                attach(self, proc.pid)
                time.sleep(0.1)
                m = gmtest.dump(proc.pid)
                assert_consistent(self, m)
                most = max(most, m["/gc/heap/allocs:objects"])
                detach(self, proc.pid)
                cycles += 1
                time.sleep(0.05)
            worker.join(timeout=150)
            cp = result["cp"]
            self.assertEqual(cp.returncode, 0, cp.stderr)
            for op in ("SET", "GET", "LPUSH", "LPOP"):
                self.assertRegex(cp.stdout, rf"{op}: [0-9.]+ requests per second")
            self.assertNotIn("rror", cp.stdout + cp.stderr)
            self.assertGreater(cycles, 2, "the benchmark ended before the cycles began")
            self.assertGreater(most, 100, "redis served requests without malloc?")
            self.assertEqual(run_cli(cli, port, "set", "gometrics", "42"), "OK")
            self.assertEqual(run_cli(cli, port, "get", "gometrics"), "42")
            run_cli(cli, port, "shutdown", "nosave")
            self.assertEqual(proc.wait(timeout=20), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=20)
        self.assertNotIn("gometrics", proc.stderr.read())


run_cli = realapp.redis_cli


if __name__ == "__main__":
    realapp.main()
