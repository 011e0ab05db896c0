"""posix_spawn and vfork+exec from a process under the agent: every child
runs, prints and exits 0, and each process writes its own report."""

import os
import subprocess

import realapp
from realapp import app, gmtest, need, run_plain  # noqa: F401

import glob
import json


class Spawn(realapp.RealAppTest):
    def test_posix_spawn_and_vfork(self):
        rounds = 5
        d = self.tempdir()
        env = gmtest.agent_env({"GOMETRICS_REPORT": os.path.join(d, "report.%p.json")})
        cp = subprocess.run([app("spawn_app"), str(rounds)], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(cp.stderr, "")
        expected = "".join(f"spawn-{r}\nvfork-{r}\n" for r in range(rounds)) + f"spawned={2 * rounds}\n"
        self.assertEqual(cp.stdout, expected)
        reports = glob.glob(os.path.join(d, "report.*.json"))
        self.assertEqual(len(reports), 2 * rounds + 1, "one report per echo and one for spawn_app")
        for path in reports:
            with open(path) as f:
                rep = json.load(f)
            self.assertFalse(os.path.exists(f"/dev/shm/gometrics.{rep['pid']}"))
            self.assert_sane(gmtest.metrics(rep))


if __name__ == "__main__":
    realapp.main()
