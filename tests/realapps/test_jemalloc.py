"""Other allocators: a program linked with jemalloc, libjemalloc preloaded in
both orders, and tcmalloc (minimal and full) and mimalloc
preloaded after the agent. The program always runs on the allocator it asked
for and works; with the agent first every allocation is counted; with
jemalloc first the agent cannot see malloc and says so instead of reporting
zeros."""

import os
import subprocess

import realapp
from realapp import app, gmtest, need, run_plain  # noqa: F401

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
TCMALLOC_FULL = "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4"  # libgoogle-perftools4: with the heap profiler's hooks
MIMALLOC = "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"  # libmimalloc2.0
N = 5000


class Jemalloc(realapp.RealAppTest):
    def assert_counts_n(self, preload=None, program="allocator_probe"):
        cp, m = self.run_app([app(program), str(N)], preload=preload)
        self.assertEqual(cp.stdout, f"allocator=jemalloc\nblocks={N}\n")
        _, twin = self.run_app([app(program), "0"], preload=preload)
        # N mallocs and the calloc of the array of pointers, all freed
        self.assertEqual(m["/gc/heap/allocs:objects"] - twin["/gc/heap/allocs:objects"], N + 1)
        self.assertEqual(m["/gc/heap/frees:objects"] - twin["/gc/heap/frees:objects"], N + 1)
        self.assert_sane(m)

    def test_linked_with_jemalloc(self):
        self.assertTrue(os.path.exists(app("allocator_probe_jemalloc")), "libjemalloc-dev missing at build time")
        self.assert_counts_n(program="allocator_probe_jemalloc")

    def test_preloaded_after_the_agent(self):
        self.assert_counts_n(preload=f"{gmtest.AGENT}:{JEMALLOC}")

    def assert_other_allocator_counted(self, library, package):
        """library preloaded after the agent: N + 1 allocations and frees."""
        self.assertTrue(os.path.exists(library), f"{package} missing (scripts/setup.sh test)")
        cp, m = self.run_app([app("allocator_probe"), str(N)], preload=f"{gmtest.AGENT}:{library}")
        self.assertEqual(cp.stdout, f"allocator=other\nblocks={N}\n")
        _, twin = self.run_app([app("allocator_probe"), "0"], preload=f"{gmtest.AGENT}:{library}")
        self.assertEqual(m["/gc/heap/allocs:objects"] - twin["/gc/heap/allocs:objects"], N + 1)
        self.assertEqual(m["/gc/heap/frees:objects"] - twin["/gc/heap/frees:objects"], N + 1)
        self.assert_sane(m)

    def test_tcmalloc_preloaded_after_the_agent(self):
        # tcmalloc's malloc_usable_size, which the agent asks of every block,
        # allocates with operator new on its first call; the agent counts
        # nothing of its own work there, and this once recursed forever
        self.assert_other_allocator_counted(TCMALLOC, "libtcmalloc-minimal4")

    def test_tcmalloc_with_heap_profiling_off(self):
        # The heap profile's live filter also flags the bootstrap arena's
        # blocks (dlsym's, here from the failed jemalloc lookups): a block of
        # tcmalloc's that shares a filter byte with one, freed before any
        # profile table exists, once crashed the free hook's slow path. The
        # blocks span tens of megabytes: every filter byte is shared.
        n = 200000
        cp, m = self.run_app([app("allocator_probe"), str(n)], preload=f"{gmtest.AGENT}:{TCMALLOC}",
                             extra_env={"GOMETRICS_PROFILE_RATE": "0"})
        self.assertEqual(cp.stdout, f"allocator=other\nblocks={n}\n")
        self.assertGreaterEqual(m["/gc/heap/frees:objects"], n + 1)

    def test_full_tcmalloc_preloaded_after_the_agent(self):
        self.assert_other_allocator_counted(TCMALLOC_FULL, "libgoogle-perftools4")

    def test_mimalloc_preloaded_after_the_agent(self):
        self.assert_other_allocator_counted(MIMALLOC, "libmimalloc2.0")

    def test_preloaded_before_the_agent(self):
        cp, rep = gmtest.run_with_report([app("allocator_probe"), str(N)], preload=f"{JEMALLOC}:{gmtest.AGENT}")
        self.assertEqual(cp.stdout, f"allocator=jemalloc\nblocks={N}\n")
        self.assertEqual(cp.stderr.count("gometrics:"), 1, cp.stderr)
        self.assertIn("not interposed", cp.stderr)
        # unsupported, never zero: the heap metrics are left out
        self.assertNotIn("/gc/heap/allocs:objects", gmtest.metrics(rep))

    def test_python_on_jemalloc(self):
        cmd = [need("python3"), "-c", "print(sum(len(str(i)) for i in range(200000)))"]
        cp, m = self.run_app(cmd, preload=f"{gmtest.AGENT}:{JEMALLOC}")
        self.assertEqual(cp.stdout, "1088890\n")
        self.assert_sane(m, min_allocs=1000)


if __name__ == "__main__":
    realapp.main()
