"""fork from a multithreaded program while the other threads allocate and
lock: no child may deadlock, each child exits through the
agent's exit path, and none leaves a segment behind."""

import os
import subprocess

import realapp
from realapp import app, gmtest, need, run_plain  # noqa: F401

class ForkThreads(realapp.RealAppTest):
    def test_children_of_a_busy_threaded_parent(self):
        forks = 40
        cp, m = self.run_app([app("fork_threads"), "4", str(forks)], timeout=150)
        self.assertEqual(cp.stdout, f"forks={forks} ok={forks}\n")
        children = [int(p) for p in cp.stderr.split("children:")[1].split()]
        self.assertEqual(len(children), forks)
        for pid in children:
            self.assertFalse(os.path.exists(f"/dev/shm/gometrics.{pid}"), f"child {pid} left its segment")
        self.assert_sane(m, min_allocs=1000, min_threads=4)

    def test_children_of_a_parent_sampling_every_allocation(self):
        """A stack every 64 bytes, on threads that keep starting: the
        parent's threads are often in the middle of one when another forks,
        and the child must still take its own samples and exit."""
        forks = 40
        cp, m = self.run_app([app("fork_threads"), "4", str(forks), "fresh"], timeout=150,
                             extra_env={"GOMETRICS_PROFILE_RATE": "64"})
        self.assertEqual(cp.stdout, f"forks={forks} ok={forks}\n")
        self.assert_sane(m, min_allocs=1000, min_threads=4)


if __name__ == "__main__":
    realapp.main()
