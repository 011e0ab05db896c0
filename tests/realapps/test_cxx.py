"""A C++ program under the agent: new/delete, new[]/delete[], aligned new and
std::thread, counted exactly against its twin run with no iterations: on
glibc, where libstdc++'s operator new calls malloc, and on jemalloc, whose
operator new and delete serve blocks themselves, preloaded
after the agent and linked with the program, on tcmalloc (minimal and
full), whose malloc_usable_size allocates with operator new on its first
call, and on mimalloc."""

import os
import subprocess

import realapp
from realapp import app, gmtest, need, run_plain  # noqa: F401

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
TCMALLOC_FULL = "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4"  # libgoogle-perftools4: with the heap profiler's hooks
MIMALLOC = "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"  # libmimalloc2.0


class Cxx(realapp.RealAppTest):
    def assert_exact(self, program="cxx_app", preload=None, extra_env=None, new_aborts=False):
        kw = {"preload": preload} if preload else {}
        if extra_env:
            kw["extra_env"] = extra_env

        def run(*args):
            return self.run_app([app(program), *map(str, args)], **kw)

        threads, iterations = 4, 5000
        cp, m = run(threads, iterations)
        expected_sum = threads * (sum(range(iterations)) + iterations * (3 + 100))
        self.assertEqual(cp.stdout, f"threads={threads} iterations={iterations} sum={expected_sum}\n")
        _, twin = run(threads, 0)

        def added(a, name):
            return a[name] - twin[name]

        # five allocations and five frees per iteration (cxx_app.cpp)
        self.assertEqual(added(m, "/gc/heap/allocs:objects"), 5 * threads * iterations)
        self.assertEqual(added(m, "/gc/heap/frees:objects"), 5 * threads * iterations)
        # the 4096-byte aligned block lands in the histogram too
        self.assertGreater(added(m, "/gc/heap/allocs:bytes"), 4096 * threads * iterations)
        # every block freed, each sized alike on both sides (on jemalloc: by
        # its size table for new, by its count of freed bytes for delete)
        self.assertEqual(added(m, "/gc/heap/allocs:bytes"), added(m, "/gc/heap/frees:bytes"))
        self.assert_sane(m, min_threads=threads)

        # each of the twenty operators, 100 times
        cp, forms = run(threads, 0, "forms")
        self.assertTrue(cp.stdout.endswith("forms=20\n"), cp.stdout)
        self.assertEqual(added(forms, "/gc/heap/allocs:objects"), 1200)
        self.assertEqual(added(forms, "/gc/heap/frees:objects"), 1200)
        self.assertEqual(added(forms, "/gc/heap/allocs:bytes"), added(forms, "/gc/heap/frees:bytes"))

        if new_aborts:
            # the allocator's operator new cannot throw: a refused one aborts,
            # with or without the agent
            for mode in ("refused", "retried"):
                cmd = [app(program), str(threads), "0", mode]
                allocator = ":".join(p for p in preload.split(":") if p != gmtest.AGENT)
                alone = subprocess.run(cmd, env=dict(realapp.plain_env(), LD_PRELOAD=allocator), capture_output=True,
                                       timeout=60)
                under, _ = gmtest.run_with_report(cmd, preload=preload, check=False, timeout=60)
                self.assertEqual((alone.returncode, under.returncode), (-6, -6), mode)
            return

        # refused allocations: what is allocated meanwhile (the reserve the
        # new_handler frees, two bad_alloc exceptions) is counted both ways
        cp, refused = run(threads, 0, "refused")
        self.assertTrue(cp.stdout.endswith("bad_alloc\nnothrow=nullptr\nnew_handler called\n"), cp.stdout)
        self.assertGreaterEqual(added(refused, "/gc/heap/allocs:objects"), 3)
        self.assertEqual(added(refused, "/gc/heap/allocs:objects"), added(refused, "/gc/heap/frees:objects"))
        self.assertEqual(added(refused, "/gc/heap/allocs:bytes"), added(refused, "/gc/heap/frees:bytes"))

        # a new refused once, then served by the retry after the new_handler
        # (which allocates and frees a block of the same size): two and two
        cp, retried = run(threads, 0, "retried")
        self.assertTrue(cp.stdout.endswith("retried after the new_handler\n"), cp.stdout)
        self.assertEqual(added(retried, "/gc/heap/allocs:objects"), 2)
        self.assertEqual(added(retried, "/gc/heap/frees:objects"), 2)

    def test_new_delete_aligned_new_threads(self):
        self.assert_exact()

    def test_jemalloc_preloaded_after_the_agent(self):
        self.assert_exact(preload=f"{gmtest.AGENT}:{JEMALLOC}")

    def test_tcmalloc_preloaded_after_the_agent(self):
        self.assertTrue(os.path.exists(TCMALLOC), "libtcmalloc-minimal4 missing (scripts/setup.sh test)")
        self.assert_exact(preload=f"{gmtest.AGENT}:{TCMALLOC}")

    def test_full_tcmalloc_preloaded_after_the_agent(self):
        self.assertTrue(os.path.exists(TCMALLOC_FULL), "libgoogle-perftools4 missing (scripts/setup.sh test)")
        self.assert_exact(preload=f"{gmtest.AGENT}:{TCMALLOC_FULL}")

    def test_mimalloc_preloaded_after_the_agent(self):
        # Debian builds mimalloc as C: its operator new aborts when refused
        # ("out of memory in 'new'") instead of calling the new_handler or
        # throwing bad_alloc, so the refused and retried forms cannot run
        self.assertTrue(os.path.exists(MIMALLOC), "libmimalloc2.0 missing (scripts/setup.sh test)")
        self.assert_exact(preload=f"{gmtest.AGENT}:{MIMALLOC}", new_aborts=True)

    def test_linked_with_jemalloc(self):
        self.assertTrue(os.path.exists(app("cxx_app_jemalloc")), "libjemalloc-dev missing at build time")
        self.assert_exact(program="cxx_app_jemalloc")

    def test_switched_to_jemalloc(self):
        self.assert_exact(extra_env={"GOMETRICS_ALLOCATOR": "jemalloc"})


if __name__ == "__main__":
    realapp.main()
