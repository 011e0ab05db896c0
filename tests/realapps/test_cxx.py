"""A C++ program under the agent: new/delete, new[]/delete[], aligned new and
std::thread, counted exactly against its twin run with no iterations: on
glibc, where libstdc++'s operator new calls malloc, and on jemalloc, whose
operator new and delete serve blocks themselves (PITFALLS 12), preloaded
after the agent and linked with the program, and on tcmalloc, whose
malloc_usable_size allocates with operator new on its first call."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import realapp  # noqa: E402
from realapp import app, gmtest, need, run_plain  # noqa: E402,F401

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


class Cxx(realapp.RealAppTest):
    def assert_exact(self, program="cxx_app", preload=None):
        threads, iterations = 4, 5000
        kw = {"preload": preload} if preload else {}
        cp, m = self.run_app([app(program), str(threads), str(iterations), "refused"], **kw)
        expected_sum = threads * (sum(range(iterations)) + iterations * (3 + 100))
        self.assertEqual(
            cp.stdout,
            f"threads={threads} iterations={iterations} sum={expected_sum}\nbad_alloc\nnothrow=nullptr\n",
        )
        # the twin is refused too: a new that fails counts nothing
        _, twin = self.run_app([app(program), str(threads), "0", "refused"], **kw)
        # five allocations and five frees per iteration (cxx_app.cpp)
        self.assertEqual(m["/gc/heap/allocs:objects"] - twin["/gc/heap/allocs:objects"], 5 * threads * iterations)
        self.assertEqual(m["/gc/heap/frees:objects"] - twin["/gc/heap/frees:objects"], 5 * threads * iterations)
        # the 4096-byte aligned block lands in the histogram too
        self.assertGreater(m["/gc/heap/allocs:bytes"] - twin["/gc/heap/allocs:bytes"], 4096 * threads * iterations)
        self.assert_sane(m, min_threads=threads)

    def test_new_delete_aligned_new_threads(self):
        self.assert_exact()

    def test_jemalloc_preloaded_after_the_agent(self):
        self.assert_exact(preload=f"{gmtest.AGENT}:{JEMALLOC}")

    def test_tcmalloc_preloaded_after_the_agent(self):
        self.assertTrue(os.path.exists(TCMALLOC), "libtcmalloc-minimal4 missing (scripts/setup.sh test)")
        self.assert_exact(preload=f"{gmtest.AGENT}:{TCMALLOC}")

    def test_linked_with_jemalloc(self):
        self.assertTrue(os.path.exists(app("cxx_app_jemalloc")), "libjemalloc-dev missing at build time")
        self.assert_exact(program="cxx_app_jemalloc")


if __name__ == "__main__":
    realapp.main()
