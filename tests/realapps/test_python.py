"""python3 under the agent: an allocation-heavy script and one with threads."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import realapp  # noqa: E402
from realapp import app, gmtest, need, run_plain  # noqa: E402,F401

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads")

# Python serves small objects from its own arenas (pymalloc); with
# PYTHONMALLOC=malloc every object goes through malloc and the agent.
ALL_MALLOC = {"PYTHONMALLOC": "malloc"}


class Python(realapp.RealAppTest):
    def test_allocation_heavy_script(self):
        cmd = [need("python3"), os.path.join(WORKLOADS, "alloc_heavy.py"), "10"]
        cp, m = self.run_app(cmd, timeout=120, extra_env=ALL_MALLOC)
        self.assertEqual(cp.stdout, run_plain(cmd, timeout=120).stdout)
        self.assertRegex(cp.stdout, r"^alloc_heavy n=10 total=\d+\n$")
        # 10 rounds of 2,000 dict entries, lists, strings and objects each
        self.assertGreater(m["/gc/heap/allocs:objects"], 100_000)
        self.assert_sane(m)

    def test_with_pymalloc(self):
        cmd = [need("python3"), os.path.join(WORKLOADS, "alloc_heavy.py"), "3"]
        cp, m = self.run_app(cmd, timeout=120)
        self.assertEqual(cp.stdout, run_plain(cmd, timeout=120).stdout)
        self.assert_sane(m, min_allocs=1000)  # pymalloc's arenas and the larger objects

    def test_threads(self):
        cmd = [need("python3"), os.path.join(WORKLOADS, "threads.py"), "8", "20"]
        cp, m = self.run_app(cmd, timeout=120, extra_env=ALL_MALLOC)
        self.assertEqual(cp.stdout, run_plain(cmd, timeout=120).stdout)
        self.assertRegex(cp.stdout, r"^threads=8 total=\d+\n$")
        self.assert_sane(m, min_allocs=8 * 20 * 500, min_threads=8)


if __name__ == "__main__":
    realapp.main()
