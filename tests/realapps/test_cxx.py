"""A C++ program under the agent: new/delete, new[]/delete[], aligned new and
std::thread, counted exactly against its twin run with no iterations."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import realapp  # noqa: E402
from realapp import app, gmtest, need, run_plain  # noqa: E402,F401

class Cxx(realapp.RealAppTest):
    def test_new_delete_aligned_new_threads(self):
        threads, iterations = 4, 5000
        cp, m = self.run_app([app("cxx_app"), str(threads), str(iterations)])
        expected_sum = threads * (sum(range(iterations)) + iterations * (3 + 100))
        self.assertEqual(cp.stdout, f"threads={threads} iterations={iterations} sum={expected_sum}\n")
        _, twin = self.run_app([app("cxx_app"), str(threads), "0"])
        # five allocations and five frees per iteration (cxx_app.cpp)
        self.assertEqual(m["/gc/heap/allocs:objects"] - twin["/gc/heap/allocs:objects"], 5 * threads * iterations)
        self.assertEqual(m["/gc/heap/frees:objects"] - twin["/gc/heap/frees:objects"], 5 * threads * iterations)
        # the 4096-byte aligned block lands in the histogram too
        self.assertGreater(m["/gc/heap/allocs:bytes"] - twin["/gc/heap/allocs:bytes"], 4096 * threads * iterations)
        self.assert_sane(m, min_threads=threads)


if __name__ == "__main__":
    realapp.main()
