"""A signal handler that allocates: every handler's malloc and
free is counted, exactly, and nothing hangs."""

import subprocess

import realapp
from realapp import app, gmtest, need, run_plain  # noqa: F401

class Signals(realapp.RealAppTest):
    def test_handler_allocations_are_counted(self):
        signals = 500
        cp, m = self.run_app([app("signal_alloc"), str(signals)])
        self.assertEqual(cp.stdout, f"handled={signals}\n")
        _, twin = self.run_app([app("signal_alloc"), "0"])
        self.assertEqual(m["/gc/heap/allocs:objects"] - twin["/gc/heap/allocs:objects"], signals)
        self.assertEqual(m["/gc/heap/frees:objects"] - twin["/gc/heap/frees:objects"], signals)
        self.assert_sane(m)


if __name__ == "__main__":
    realapp.main()
