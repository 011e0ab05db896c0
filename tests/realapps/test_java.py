"""Java as Debian installs it (default-jdk-headless) under the agent: a small
program compiled here with javac, whose direct buffers the JVM takes from
malloc one by one. The JVM's own signal handlers (SIGSEGV for null checks) and its many threads run with the agent in place."""

import os
import subprocess

import realapp
from realapp import need, run_plain

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "workloads", "java", "DirectBuffers.java")
N = 3000


def bucket(m, low):
    """Allocations counted in the allocs-by-size bucket that starts at low."""
    h = m["/gc/heap/allocs-by-size:bytes"]
    return h["counts"][h["buckets"].index(low)]


class Java(realapp.RealAppTest):
    def setUp(self):
        self.classes = self.tempdir()
        subprocess.run([need("javac"), "-d", self.classes, SOURCE], env=realapp.plain_env(), capture_output=True,
                       timeout=120, check=True)

    def java(self, n):
        return [need("java"), "-cp", self.classes, "DirectBuffers", str(n)]

    def test_direct_buffers(self):
        cp, m = self.run_app(self.java(N), timeout=120)
        self.assertEqual(cp.stdout, run_plain(self.java(N), timeout=120).stdout)
        # 20,000 + i % 64 bytes each, plus the first byte, i % 127
        total = sum(20000 + i % 64 + i % 127 for i in range(N))
        self.assertEqual(cp.stdout, f"direct n={N} total={total} words=100\n")
        _, twin = self.run_app(self.java(0), timeout=120)
        # every direct buffer is one malloc of 20,000 to 20,063 bytes
        self.assertGreaterEqual(bucket(m, 16384) - bucket(twin, 16384), N)
        self.assert_sane(m, min_allocs=N, min_threads=2)
        self.assert_sane(twin, min_allocs=1000)  # the JVM's start-up


if __name__ == "__main__":
    realapp.main()
