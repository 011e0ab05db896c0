"""git under the agent: init, add, commit and log in a temporary repository."""

import os
import subprocess

import realapp
from realapp import app, gmtest, need, run_plain  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads")

class Git(realapp.RealAppTest):
    def test_init_commit_log(self):
        git = need("git")
        repo = self.tempdir()
        env = {"HOME": repo, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com",
               "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.com",
               "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z"}
        reports = []

        def git_run(*args):
            cp, m = self.run_app([git, "-C", repo, *args], extra_env=env)
            self.assert_sane(m)
            reports.append(m)
            return cp.stdout

        git_run("init", "-q", "-b", "main")
        for i in range(3):
            with open(os.path.join(repo, f"file{i}.txt"), "w") as f:
                f.write("line\n" * (100 * (i + 1)))
            git_run("add", f"file{i}.txt")
            git_run("commit", "-q", "-m", f"commit {i}")
        self.assertEqual(git_run("log", "--format=%s"), "commit 2\ncommit 1\ncommit 0\n")
        self.assertEqual(git_run("rev-list", "--count", "HEAD"), "3\n")
        self.assertEqual(git_run("show", "HEAD:file1.txt"), "line\n" * 200)
        self.assertEqual(git_run("status", "--porcelain"), "")
        self.assertEqual(len(reports), 11)


if __name__ == "__main__":
    realapp.main()
