"""10,000 threads created and joined in waves of 100: every thread's
allocation survives its exit (slots folded, none lost, none leaked)."""

import subprocess

import realapp
from realapp import app, gmtest, need, run_plain  # noqa: F401

class ManyThreads(realapp.RealAppTest):
    def test_ten_thousand_threads_in_waves(self):
        n = 10000
        cp, m = self.run_app([app("many_threads"), str(n), "100", "1"], timeout=120)
        self.assertEqual(cp.stdout, f"threads={n}\n")
        _, twin = self.run_app([app("many_threads"), str(n), "100", "0"], timeout=120)
        self.assertEqual(m["/gc/heap/allocs:objects"] - twin["/gc/heap/allocs:objects"], n)
        self.assertEqual(m["/gc/heap/frees:objects"] - twin["/gc/heap/frees:objects"], n)
        self.assertEqual(m["/gc/heap/objects:objects"], twin["/gc/heap/objects:objects"])
        self.assert_sane(m, min_threads=n)


if __name__ == "__main__":
    realapp.main()
