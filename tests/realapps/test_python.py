"""Debian's python3 (/usr/bin/python3, non-PIE) under the agent: an
allocation-heavy script, directly and through `gometrics-cli exec`, and one
with threads."""

import json
import os
import subprocess

import realapp
from realapp import app, gmtest, need, run_plain  # noqa: F401

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

    def test_through_exec(self):
        # `gometrics-cli exec` preloads the agent itself and writes the report
        cmd = [need("python3"), os.path.join(WORKLOADS, "alloc_heavy.py"), "5"]
        report = os.path.join(self.tempdir(), "report.json")
        env = dict(realapp.plain_env(), **ALL_MALLOC)
        cp = subprocess.run([gmtest.CLI, "exec", "--report", report, "--", *cmd], env=env, capture_output=True,
                            text=True, timeout=120)
        self.assertEqual(cp.returncode, 0, cp.stderr[-2000:])
        self.assertEqual(cp.stdout, run_plain(cmd, timeout=120).stdout)
        self.assertNotIn("not interposed", cp.stderr)
        with open(report) as f:
            rep = json.load(f)
        self.assertEqual(rep["exit_status"], 0)
        m = gmtest.metrics(rep)
        self.assertGreater(m["/gc/heap/allocs:objects"], 50_000)  # 5 rounds of 8,000 objects and more
        self.assert_sane(m)

    def test_threads(self):
        cmd = [need("python3"), os.path.join(WORKLOADS, "threads.py"), "8", "20"]
        cp, m = self.run_app(cmd, timeout=120, extra_env=ALL_MALLOC)
        self.assertEqual(cp.stdout, run_plain(cmd, timeout=120).stdout)
        self.assertRegex(cp.stdout, r"^threads=8 total=\d+\n$")
        self.assert_sane(m, min_allocs=8 * 20 * 500, min_threads=8)


if __name__ == "__main__":
    realapp.main()
