"""Node.js as Debian installs it (/usr/bin/node, non-PIE) under the agent:
Buffers, which Node's ArrayBuffer allocator takes from malloc one by one,
and JSON and strings, which live in V8's own heap."""

import os

import realapp
from realapp import need, run_plain

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "workloads", "buffers.js")
N = 5000


def bucket(m, low):
    """Allocations counted in the allocs-by-size bucket that starts at low."""
    h = m["/gc/heap/allocs-by-size:bytes"]
    return h["counts"][h["buckets"].index(low)]


class Node(realapp.RealAppTest):
    def test_buffers(self):
        cmd = [need("node"), SCRIPT, str(N)]
        cp, m = self.run_app(cmd, timeout=120)
        self.assertEqual(cp.stdout, run_plain(cmd, timeout=120).stdout)
        self.assertRegex(cp.stdout, rf"^buffers n={N} total=\d+\n$")
        _, twin = self.run_app([need("node"), SCRIPT, "0"], timeout=120)
        # every Buffer of 16,384 to 16,447 bytes is one allocation of its own
        self.assertGreaterEqual(bucket(m, 16384) - bucket(twin, 16384), N)
        self.assert_sane(m, min_allocs=N)
        self.assert_sane(twin, min_allocs=1000)  # V8's and Node's start-up


if __name__ == "__main__":
    realapp.main()
