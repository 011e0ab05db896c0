"""A non-PIE program that takes malloc's address, as Debian's
/usr/bin/python3 and node do: dlsym(RTLD_DEFAULT, "malloc") points into the
executable, yet every call reaches the agent, which must count them all
rather than call the program not interposed."""

import subprocess

import realapp
from realapp import app, need

N = 3000


class NonPie(realapp.RealAppTest):
    def test_built_as_a_fixed_position_executable(self):
        header = subprocess.run([need("readelf"), "-h", app("nopie_malloc")], capture_output=True, text=True,
                                timeout=30, check=True).stdout
        self.assertRegex(header, r"Type:\s+EXEC ")

    def test_calls_through_the_pointer_and_direct_are_counted_exactly(self):
        cp, m = self.run_app([app("nopie_malloc"), str(N)])
        lines = dict(line.split("=") for line in cp.stdout.split())
        # the case under test: the program's malloc is its own PLT entry
        self.assertEqual(lines["malloc_in_executable"], "1")
        self.assertEqual(lines["blocks"], str(2 * N))
        usable = int(lines["usable"])
        _, twin = self.run_app([app("nopie_malloc"), "0"])
        for side in ("allocs", "frees"):
            self.assertEqual(m[f"/gc/heap/{side}:objects"] - twin[f"/gc/heap/{side}:objects"], 2 * N, side)
            self.assertEqual(m[f"/gc/heap/{side}:bytes"] - twin[f"/gc/heap/{side}:bytes"], 2 * N * usable, side)
        self.assert_sane(m, min_allocs=2 * N)


if __name__ == "__main__":
    realapp.main()
