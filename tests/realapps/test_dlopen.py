"""dlopen and dlclose of a library that allocates (in its constructor, its
functions and its destructor), repeatedly; and RTLD_DEEPBIND,
where the library's malloc binds past the agent but frees come through it."""

import subprocess

import realapp
from realapp import app, gmtest, need, run_plain  # noqa: F401

ROUNDS, N = 20, 1000


class Dlopen(realapp.RealAppTest):
    def counts(self, mode, n):
        cmd = [app("dlopen_app"), app("libgmplugin.so"), str(ROUNDS), str(n), mode]
        cp, m = self.run_app(cmd)
        self.assertEqual(cp.stdout, f"rounds={ROUNDS} total={ROUNDS * sum(range(n))}\n")
        return m

    def test_allocations_in_the_library_are_exact(self):
        for mode in ("local", "cross"):
            with self.subTest(mode=mode):
                m, twin = self.counts(mode, N), self.counts(mode, 0)
                self.assertEqual(m["/gc/heap/allocs:objects"] - twin["/gc/heap/allocs:objects"], ROUNDS * N)
                self.assertEqual(m["/gc/heap/frees:objects"] - twin["/gc/heap/frees:objects"], ROUNDS * N)
                self.assert_sane(m)

    def test_deepbind_library_runs_and_counts_stay_sane(self):
        cmd = [app("dlopen_app"), app("libgmplugin.so"), str(ROUNDS), str(N), "deepbind"]
        cp, rep = gmtest.run_with_report(cmd)
        self.assertEqual(cp.stdout, f"rounds={ROUNDS} total={ROUNDS * sum(range(N))}\n")
        self.assertEqual(cp.stderr, "")
        m = gmtest.metrics(rep)
        # The library's mallocs went straight to libc, its blocks' frees came
        # through us: more frees than allocations must not wrap live counts.
        self.assertGreaterEqual(m["/gc/heap/frees:objects"], ROUNDS * N)
        for name in ("/gc/heap/objects:objects", "/gc/heap/live:bytes"):
            self.assertLess(m[name], realapp.HUGE, name)


if __name__ == "__main__":
    realapp.main()
