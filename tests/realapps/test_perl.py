"""perl under the agent: hashes, sorting and string building."""

import os
import subprocess

import realapp
from realapp import app, gmtest, need, run_plain  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads")

SCRIPT = r"""
my %h;
for my $i (1 .. 50000) { $h{"key$i"} = [$i, "v" x ($i % 13)]; }
my @keys = sort { $h{$a}[0] <=> $h{$b}[0] } keys %h;
my $len = 0;
$len += length($h{$_}[1]) for @keys;
my $joined = join(",", map { uc } @keys[0 .. 999]);
print scalar(@keys), " $len ", length($joined), " $keys[-1]\n";
"""


class Perl(realapp.RealAppTest):
    def test_hashes_and_sorting(self):
        cmd = [need("perl"), "-e", SCRIPT]
        cp, m = self.run_app(cmd)
        # 50,000 keys; sum of i % 13 over 1..50000; 1,000 upper-cased keys and 999 commas
        expected_len = sum(i % 13 for i in range(1, 50001))
        joined = sum(len(f"KEY{i}") for i in range(1, 1001)) + 999
        self.assertEqual(cp.stdout, f"50000 {expected_len} {joined} key50000\n")
        self.assertGreater(m["/gc/heap/allocs:objects"], 50_000)
        self.assert_sane(m)


if __name__ == "__main__":
    realapp.main()
