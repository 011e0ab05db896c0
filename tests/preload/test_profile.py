"""Sampled heap and mutex profiles: the CLI's pprof output read by Go's own
`go tool pprof`, in-use versus allocated, threads, fork and exit reports,
and profiling switched off."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import gmtest
from gmtest import cli, program

RATE = 32 * 1024  # mean bytes between heap samples: ~700 samples per 24 MiB
GO = shutil.which("go")

# "      flat  flat%   sum%        cum   cum%  name" rows of `pprof -top`.
TOP_ROW = re.compile(r"^\s*(-?[\d.]+)(\S*)\s+(-?[\d.]+)%\s+(-?[\d.]+)%\s+\S+\s+(-?[\d.]+)%\s+(.+?)\s*$")


def go_top(path, sample_index):
    """{function: flat value} from `go tool pprof -top`, bytes for space, ns for delay."""
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, HOME=home, PPROF_TMPDIR=home, GOFLAGS="", GOCACHE=os.path.join(home, "cache"))
        env.pop("LD_PRELOAD", None)
        cp = subprocess.run([GO, "tool", "pprof", "-top", "-nodefraction=0", f"-sample_index={sample_index}",
                             "-unit=B" if "space" in sample_index else "-unit=ns" if sample_index == "delay" else
                             "-unit=minimum", path],
                            capture_output=True, text=True, timeout=120, env=env)
    if cp.returncode != 0:
        raise AssertionError(f"go tool pprof failed: {cp.stderr[-2000:]}")
    flat = {}
    for line in cp.stdout.splitlines():
        m = TOP_ROW.match(line)
        if m:
            flat[m.group(6)] = flat.get(m.group(6), 0.0) + float(m.group(1))
    if not flat:
        raise AssertionError(f"no stacks in the {sample_index} profile: {cp.stdout[-2000:]}")
    return flat


def share(flat, a, b):
    total = flat.get(a, 0) + flat.get(b, 0)
    return flat.get(a, 0) / total if total else float("nan")


class Live:
    """profile_sites under the agent, alive until the block ends."""

    def __init__(self, args, env):
        self.spawned = gmtest.Spawned([program("profile_sites"), *map(str, args)], extra_env=env)

    def __enter__(self):
        proc = self.spawned.__enter__()
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise AssertionError(f"profile_sites did not get ready: {line!r} {proc.stderr.read()[-2000:]}")
        return proc

    def __exit__(self, *exc):
        self.spawned.__exit__(*exc)


def profile(*args):
    cp = cli("profile", *args, timeout=120)
    if cp.returncode != 0:
        raise AssertionError(f"profile {args} exited {cp.returncode}: {cp.stderr}")
    return cp


@unittest.skipUnless(GO, "go tool pprof (golang-go) is needed: scripts/setup.sh test installs it")
class HeapProfileAcrossSizes(unittest.TestCase):
    def test_small_and_large_blocks_are_weighed_alike(self):
        # Small sizes schedule their samples by count, the others by a byte
        # countdown: half the bytes in 64-byte blocks, half in 4000-byte ones
        # must come out half and half, and each scaled back to what it is.
        mib = 32
        with tempfile.TemporaryDirectory() as d, Live(["sizes", mib], {"GOMETRICS_PROFILE_RATE": str(RATE)}) as proc:
            path = os.path.join(d, "heap.pb.gz")
            profile("heap", "--pid", proc.pid, "-o", path)
            flat = go_top(path, "inuse_space")
        self.assertAlmostEqual(share(flat, "small_site", "large_site"), 0.5, delta=0.08, msg=flat)
        half = mib * 2**20 / 2
        self.assertAlmostEqual(flat.get("small_site", 0) / (half * 72 / 64), 1.0, delta=0.2, msg=flat)
        self.assertAlmostEqual(flat.get("large_site", 0) / (half * 4008 / 4000), 1.0, delta=0.2, msg=flat)


class SamplingSchedule(unittest.TestCase):
    def samples(self, publisher):
        """Heap samples taken from `profile_sites sizes 32` at the default rate."""
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "profile.json")
            env = gmtest.agent_env({"GOMETRICS_PUBLISHER": publisher, "GOMETRICS_PROFILE_REPORT": path})
            cp = subprocess.run([program("profile_sites"), "sizes", "32"], env=env, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=120)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            with open(path) as f:
                return sum(st["alloc_objects"] for st in json.load(f)["stacks"] if st["kind"] == "heap")

    def test_a_waiting_lazy_publisher_does_not_add_samples(self):
        # While a lazy publisher waits, the hooks call out every 64 KiB of a
        # size to poll for readers; those calls must not be samples (they
        # were: 8 times the samples at the default 512 KiB rate). 16 MiB of
        # 72-byte and 16 MiB of 4008-byte blocks: about 68 samples expected.
        expected = (16 * 2**20 / 64 * 72 + 16 * 2**20 / 4000 * 4008) / 524288
        for publisher in ("thread", "lazy"):
            n = self.samples(publisher)
            self.assertGreater(n, 0.5 * expected, (publisher, n, expected))
            self.assertLess(n, 1.6 * expected, (publisher, n, expected))


@unittest.skipUnless(GO, "go tool pprof (golang-go) is needed: scripts/setup.sh test installs it")
class HeapProfile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        cls.heap = os.path.join(cls.dir, "heap.pb.gz")
        cls.allocs = os.path.join(cls.dir, "allocs.pb.gz")
        with Live(["heap", 24], {"GOMETRICS_PROFILE_RATE": str(RATE)}) as proc:
            profile("heap", "--pid", proc.pid, "-o", cls.heap)
            profile("allocs", "--pid", proc.pid, "-o", cls.allocs)
            cls.heap_text = profile("heap", "--pid", proc.pid, "--format", "text", "--top", 20).stdout
            cls.allocs_text = profile("allocs", "--pid", proc.pid, "--format", "text", "--top", 20).stdout

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def test_go_pprof_attributes_bytes_3_to_1(self):
        for index in ("inuse_space", "alloc_space"):
            flat = go_top(self.heap, index)
            self.assertAlmostEqual(share(flat, "alpha_site", "beta_site"), 0.75, delta=0.10, msg=f"{index}: {flat}")

    def test_values_are_scaled_back_to_the_bytes_allocated(self):
        # 24 MiB of 512-byte blocks in alpha and beta, each with glibc's
        # 8 bytes of slack (usable 520); unscaled samples would total ~1/64 of it.
        flat = go_top(self.heap, "inuse_space")
        live = flat.get("alpha_site", 0) + flat.get("beta_site", 0)
        self.assertAlmostEqual(live / (24 * 2**20 * 520 / 512), 1.0, delta=0.2, msg=flat)
        objects = go_top(self.heap, "inuse_objects")
        n = objects.get("alpha_site", 0) + objects.get("beta_site", 0)
        self.assertAlmostEqual(n / (24 * 2**20 / 512), 1.0, delta=0.2, msg=objects)

    def test_freed_site_shows_in_allocs_not_in_use(self):
        allocated = go_top(self.allocs, "alloc_space")
        self.assertGreater(allocated.get("gamma_site", 0), 0.5 * allocated.get("alpha_site", 0) * 2 / 3, allocated)
        in_use = go_top(self.heap, "inuse_space")
        self.assertGreater(in_use.get("alpha_site", 0), 0, in_use)
        self.assertEqual(in_use.get("gamma_site", 0), 0, in_use)
        self.assertIn("gamma_site", self.allocs_text)
        self.assertNotIn("gamma_site", self.heap_text)

    def test_default_sample_types_are_go_s(self):
        self.assertTrue(self.heap_text.startswith("inuse_space:"), self.heap_text[:200])
        self.assertTrue(self.allocs_text.startswith("alloc_space:"), self.allocs_text[:200])
        self.assertIn("alpha_site (", self.heap_text)  # symbolized, with file and line
        self.assertIn("profile_sites.c:", self.heap_text)


@unittest.skipUnless(GO, "go tool pprof (golang-go) is needed")
class ThreadsAndFork(unittest.TestCase):
    def test_many_threads_sampling_at_once(self):
        threads, mib = 8, 4
        with tempfile.TemporaryDirectory() as d, \
                Live(["threads", threads, mib], {"GOMETRICS_PROFILE_RATE": str(RATE)}) as proc:
            path = os.path.join(d, "heap.pb.gz")
            profile("heap", "--pid", proc.pid, "-o", path)
            flat = go_top(path, "inuse_space")
        self.assertAlmostEqual(share(flat, "alpha_site", "beta_site"), 0.75, delta=0.10, msg=flat)
        live = flat.get("alpha_site", 0) + flat.get("beta_site", 0)
        self.assertAlmostEqual(live / (threads * mib * 2**20 * 520 / 512), 1.0, delta=0.2, msg=flat)

    def test_fork_and_exit_write_both_profiles(self):
        with tempfile.TemporaryDirectory() as d:
            env = gmtest.agent_env({"GOMETRICS_PROFILE_RATE": str(RATE),
                                    "GOMETRICS_PROFILE_REPORT": os.path.join(d, "profile.%p.json")})
            cp = subprocess.run([program("profile_sites"), "fork", "8"], env=env, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=120)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            reports = {int(re.search(r"profile\.(\d+)\.json", p).group(1)): p
                       for p in glob.glob(os.path.join(d, "profile.*.json"))}
            self.assertEqual(len(reports), 2, os.listdir(d))
            texts = {}
            for pid, path in reports.items():
                out = os.path.join(d, f"heap.{pid}.pb.gz")
                profile("heap", "--from-report", path, "-o", out)
                texts[pid] = go_top(out, "inuse_space")
            parent = min(reports, key=lambda pid: "child_site" in texts[pid])
            child = max(reports, key=lambda pid: "child_site" in texts[pid])
            self.assertNotIn("child_site", texts[parent], texts[parent])
            self.assertIn("child_site", texts[child], texts[child])
            # The child's own 8 MiB, and what it inherited from its parent.
            self.assertAlmostEqual(texts[child]["child_site"] / (8 * 2**20 * 520 / 512), 1.0, delta=0.2)
            self.assertAlmostEqual(share(texts[parent], "alpha_site", "beta_site"), 0.75, delta=0.10)


@unittest.skipUnless(GO, "go tool pprof (golang-go) is needed")
class MutexProfile(unittest.TestCase):
    def test_waits_attributed_3_to_1(self):
        rounds = 10
        with tempfile.TemporaryDirectory() as d, \
                Live(["mutex", rounds], {"GOMETRICS_MUTEX_PROFILE_FRACTION": "1"}) as proc:
            path = os.path.join(d, "mutex.pb.gz")
            profile("mutex", "--pid", proc.pid, "-o", path)
            delay = go_top(path, "delay")
            contentions = go_top(path, "contentions")
        self.assertAlmostEqual(share(delay, "alpha_lock_site", "beta_lock_site"), 0.75, delta=0.10, msg=delay)
        # Every round contends once at each site (the holder has the lock).
        self.assertEqual(contentions.get("alpha_lock_site"), rounds, contentions)
        self.assertEqual(contentions.get("beta_lock_site"), rounds, contentions)
        # 15 ms per alpha round, at least.
        self.assertGreaterEqual(delay["alpha_lock_site"], rounds * 14e6, delay)

    def test_sampled_contentions_are_scaled_by_the_fraction(self):
        rounds = 16
        with Live(["mutex", rounds], {"GOMETRICS_MUTEX_PROFILE_FRACTION": "4"}) as proc:
            text = profile("mutex", "--pid", proc.pid, "--format", "text").stdout
        first = text.splitlines()[0]
        self.assertTrue(first.startswith("delay:"), text)
        # Each sampled contention stands for 4 (the totals' accuracy is
        # MutexSampling's: sampling is random, 32 contentions are too few).
        with tempfile.TemporaryDirectory() as d, \
                Live(["mutex", rounds], {"GOMETRICS_MUTEX_PROFILE_FRACTION": "4"}) as proc:
            path = os.path.join(d, "mutex.pb.gz")
            profile("mutex", "--pid", proc.pid, "-o", path)
            try:
                contentions = go_top(path, "contentions")
            except AssertionError as e:  # no contention drawn at all: (3/4)^32, one run in 10,000
                self.assertIn("no stacks", str(e))
                contentions = {}
        total = sum(contentions.values())
        self.assertEqual(total % 4, 0, contentions)
        self.assertLessEqual(total, 4 * (2 * rounds + 2), contentions)


class PeriodicLocks(Live):
    """periodic_locks under the agent: contends in the pattern a, a, a, b."""

    def __init__(self, periods, hold_us, env):
        self.spawned = gmtest.Spawned([program("periodic_locks"), str(periods), str(hold_us)], extra_env=env)


@unittest.skipUnless(GO, "go tool pprof (golang-go) is needed")
class MutexSampling(unittest.TestCase):
    """Sampling at random, one contention in the fraction on average: a
    periodic program cannot hide a site from it (every Nth would)."""

    def periodic_profile(self, periods, hold_us, env):
        with tempfile.TemporaryDirectory() as d, PeriodicLocks(periods, hold_us, env) as proc:
            path = os.path.join(d, "mutex.pb.gz")
            profile("mutex", "--pid", proc.pid, "-o", path)
            return go_top(path, "delay"), go_top(path, "contentions")

    def test_a_periodic_pattern_gets_its_3_to_1_split(self):
        # The default fraction (8) and a period of 4: every 8th contention
        # would always fall on the same site. 3200 contentions, ~400 samples.
        delay, contentions = self.periodic_profile(800, 400, {})
        print(f"periodic a/b delay share {share(delay, 'a_site', 'b_site'):.3f}, contentions share "
              f"{share(contentions, 'a_site', 'b_site'):.3f}", file=sys.stderr)
        self.assertAlmostEqual(share(delay, "a_site", "b_site"), 0.75, delta=0.10, msg=delay)
        self.assertAlmostEqual(share(contentions, "a_site", "b_site"), 0.75, delta=0.10, msg=contentions)

    def test_scaled_totals_estimate_the_true_counts(self):
        # One in 4 on average, each sample standing for 4: the profile's
        # contentions are a multiple of 4 near the program's 4 * periods
        # (binomial: the standard deviation is 3.5% of 2400, the bound over 4 of them).
        periods = 600
        delay, contentions = self.periodic_profile(periods, 200, {"GOMETRICS_MUTEX_PROFILE_FRACTION": "4"})
        total = sum(contentions.values())
        self.assertEqual(total % 4, 0, contentions)
        self.assertAlmostEqual(total / (4 * periods), 1.0, delta=0.15, msg=contentions)
        # Each contention waited most of the 200 us hold.
        self.assertGreater(delay.get("a_site", 0) + delay.get("b_site", 0), 4 * periods * 100e3 * 0.8, delay)


class ProfilingOff(unittest.TestCase):
    def test_rate_zero_has_no_heap_profile(self):
        with Live(["heap", 1], {"GOMETRICS_PROFILE_RATE": "0"}) as proc:
            cp = cli("profile", "heap", "--pid", proc.pid, "-o", os.devnull)
        self.assertEqual(cp.returncode, 1)
        self.assertEqual(len(cp.stderr.strip().splitlines()), 1, cp.stderr)
        self.assertIn("GOMETRICS_PROFILE_RATE=0", cp.stderr)

    def test_all_off_has_no_region_and_costs_no_buckets(self):
        with Live(["heap", 1], {"GOMETRICS_PROFILE_RATE": "0", "GOMETRICS_MUTEX_PROFILE_FRACTION": "0"}) as proc:
            m = gmtest.dump(proc.pid)
            for kind in ("heap", "allocs", "mutex"):
                cp = cli("profile", kind, "--pid", proc.pid, "-o", os.devnull)
                self.assertEqual(cp.returncode, 1, cp.stderr)
                self.assertEqual(len(cp.stderr.strip().splitlines()), 1, cp.stderr)
                self.assertIn("does not profile", cp.stderr)
        self.assertEqual(m["/memory/classes/profiling/buckets:bytes"], 0)

    def test_profiling_on_reports_its_buckets(self):
        # The tables are mapped at the first sample (12 MiB allocated leave
        # none with probability e^-24), after the start-up snapshot: the
        # publisher thread takes the fresh one the dump asks for.
        with Live(["heap", 8], {"GOMETRICS_PUBLISHER": "thread"}) as proc:
            m = gmtest.dump(proc.pid)
        self.assertGreater(m["/memory/classes/profiling/buckets:bytes"], 0)

    def test_bad_input_fails_with_one_line(self):
        with tempfile.TemporaryDirectory() as d:
            bad = os.path.join(d, "bad.json")
            with open(bad, "w") as f:
                f.write('{"format": "gometrics-profile-report", "version": 1, "pid": 1}')
            for args, status in ((["heap", "--pid", "999999999"], 1),
                                 (["heap", "--from-report", bad], 1),
                                 (["heap", "--from-report", os.path.join(d, "missing.json")], 1),
                                 (["goroutine", "--pid", "1"], 2)):
                cp = cli("profile", *args, "-o", os.path.join(d, "out.pb.gz"))
                self.assertEqual(cp.returncode, status, (args, cp.stderr))
                self.assertEqual(len(cp.stderr.strip().splitlines()), 1, (args, cp.stderr))


if __name__ == "__main__":
    gmtest.main()
