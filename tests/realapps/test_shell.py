"""A shell pipeline under the agent: the shell forks, each child execs, every
process writes its own report (GOMETRICS_REPORT with %p) and removes its
segment."""

import os
import subprocess

import realapp
from realapp import app, gmtest, need, run_plain  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads")

import glob
import json

PIPELINE = "seq 1 20000 | sort -rn | sed -n 1,3p | tr 0-9 a-j; echo done | cat"


class ShellPipeline(realapp.RealAppTest):
    def test_pipeline_forks_and_execs(self):
        d = self.tempdir()
        env = gmtest.agent_env({"GOMETRICS_REPORT": os.path.join(d, "report.%p.json")})
        sh = subprocess.Popen(["sh", "-c", PIPELINE], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
        out, err = sh.communicate(timeout=60)
        # dash leaves by _exit: no exit report, and its segment stays for `gc`
        stale = f"/dev/shm/gometrics.{sh.pid}"
        self.addCleanup(lambda: os.path.exists(stale) and os.unlink(stale))
        self.assertEqual(sh.returncode, 0, err)
        self.assertEqual(out, "caaaa\nbjjjj\nbjjji\ndone\n")
        self.assertEqual(err, "")
        reports = sorted(glob.glob(os.path.join(d, "report.*.json")))
        # one per exec'd program at least: seq, sort, sed, tr, cat
        self.assertGreaterEqual(len(reports), 5, reports)
        commands_with_allocs = 0
        for path in reports:
            with open(path) as f:
                rep = json.load(f)
            self.assertEqual(os.path.basename(path), f"report.{rep['pid']}.json")
            self.assertFalse(os.path.exists(f"/dev/shm/gometrics.{rep['pid']}"), "segment left behind")
            m = gmtest.metrics(rep)
            self.assert_sane(m, min_allocs=0)
            commands_with_allocs += m["/gc/heap/allocs:objects"] > 0
        self.assertGreaterEqual(commands_with_allocs, 5)


if __name__ == "__main__":
    realapp.main()
