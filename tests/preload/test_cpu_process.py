"""CPU classes, gomaxprocs, scheduler latencies and process metrics under the agent."""

import os
import subprocess
import time
import unittest

import gmtest
from gmtest import metrics, program, run_with_report

CLASSES = ["/cpu/classes/user:cpu-seconds", "/cpu/classes/system:cpu-seconds", "/cpu/classes/idle:cpu-seconds"]
TOTAL = "/cpu/classes/total:cpu-seconds"


class Cpu(unittest.TestCase):
    def test_user_cpu_matches_getrusage(self):
        cp, rep = run_with_report([program("spin"), "1.0", "1"])
        own = float(cp.stdout)
        user = metrics(rep)["/cpu/classes/user:cpu-seconds"]
        self.assertGreaterEqual(own, 0.95)
        self.assertLess(abs(user - own), 0.1 * own)

    def test_sum_rule_holds_in_every_snapshot(self):
        with gmtest.Spawned([program("spin"), "1.5", "2", "wait"], {"GOMETRICS_INTERVAL_MS": "20"}) as p:
            last = None
            snapshots = 0
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                m = gmtest.dump(p.pid)
                leaves = [m[c] for c in CLASSES]
                # Exact: the leaves are binary quanta, so any sum of them is exact.
                self.assertEqual(sum(leaves), m[TOTAL])
                self.assertEqual(leaves[0] + leaves[2] + leaves[1], m[TOTAL])
                now = leaves + [m[TOTAL]]
                if last:
                    for a, b in zip(last, now):
                        self.assertGreaterEqual(b, a)  # every class only grows
                last = now
                snapshots += 1
                if snapshots >= 10 and now[0] > 1.0:  # snapshots taken while it spun, and after
                    break
            self.assertGreaterEqual(snapshots, 10)
            p.stdin.write("\n")
            p.stdin.flush()

    def test_gomaxprocs_is_the_affinity_count(self):
        cp, rep = run_with_report(["taskset", "-c", "0", program("spin"), "0.05", "1"])
        self.assertEqual(metrics(rep)["/sched/gomaxprocs:threads"], 1)
        _, rep = run_with_report([program("spin"), "0.05", "1"])
        self.assertLessEqual(metrics(rep)["/sched/gomaxprocs:threads"], len(os.sched_getaffinity(0)))

    def test_total_is_capacity_over_lifetime(self):
        _, rep = run_with_report(["taskset", "-c", "0", program("spin"), "0.3", "1"])
        m = metrics(rep)
        # One CPU over the process's life: its uptime, up to the 10 ms tick of its start time.
        self.assertAlmostEqual(m[TOTAL], m["/process/uptime:seconds"], delta=0.05)


class Sched(unittest.TestCase):
    def test_runnable_wait_of_threads_is_counted(self):
        # Two threads share one CPU for 0.3 s of CPU each: each waits while
        # the other runs. Snapshots every 50 ms read them while they live
        # (a thread's last stretch since the last snapshot is not read).
        _, rep = run_with_report(["taskset", "-c", "0", program("spin"), "0.6", "2"], {"GOMETRICS_INTERVAL_MS": "50"})
        m = metrics(rep)
        self.assertGreaterEqual(m["/sched/latencies/total:seconds"], 0.2)
        self.assertGreater(gmtest.hist_total(m["/sched/latencies:seconds"]), 0)


class Process(unittest.TestCase):
    def test_known_resources(self):
        # An idle single-threaded program: only an eager publisher refreshes it.
        with gmtest.Spawned([program("resources"), "100", "64", "20"], {"GOMETRICS_PUBLISHER": "thread"}) as p:
            self.assertEqual(p.stdout.readline(), "ready\n")
            t0 = time.monotonic()
            m = gmtest.dump(p.pid)
            self.assertEqual(m["/process/fds/open:fds"], len(gmtest.program_fds(p.pid)))
            self.assertGreaterEqual(m["/process/fds/open:fds"], 103)
            self.assertGreaterEqual(m["/process/memory/rss:bytes"], 64 << 20)
            self.assertGreaterEqual(m["/process/faults/minor:faults"], (64 << 20) // 4096)
            self.assertGreaterEqual(m["/process/ctxswitches/voluntary:switches"], 20)
            with open(f"/proc/{p.pid}/stat") as f:
                start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
            with open("/proc/uptime") as f:
                boot_uptime = float(f.read().split()[0])
            expected = boot_uptime - start_ticks / os.sysconf("SC_CLK_TCK") - (time.monotonic() - t0)
            self.assertAlmostEqual(m["/process/uptime:seconds"], expected, delta=0.5)
            p.stdin.write("\n")
            p.stdin.flush()


if __name__ == "__main__":
    gmtest.main()
