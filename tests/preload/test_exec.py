"""`gometrics-cli exec`, `check` and `diff`: statuses, reports, checks, process trees."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import gmtest
from gmtest import CLI, program


def exec_cli(*args, report=True, timeout=60, env=None):
    """Runs `gometrics-cli exec [--report R] ARGS`; returns (completed, report or None)."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "report.json")
        cmd = [CLI, "exec"] + (["--report", path] if report else []) + list(map(str, args))
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        rep = None
        if os.path.exists(path):
            with open(path) as f:
                rep = json.load(f)
        return cp, rep


def by_name(doc):
    return gmtest.metrics(doc)


class Exec(unittest.TestCase):
    def test_passing_checks_exit_0_with_summary_and_report(self):
        cp, rep = exec_cli("--check", "/gc/heap/objects:objects >= 100", "--check", "/gc/heap/live:bytes < 64MiB",
                           "--check", "/gc/heap/allocs-by-size:bytes:p99 <= 1KiB",
                           "--", program("leak"), "100")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(cp.stdout, "leaked 100\n")  # CMD's own output untouched
        self.assertIn("exited with status 0", cp.stderr)
        self.assertIn("allocations", cp.stderr)
        self.assertIn("peak rss", cp.stderr)
        self.assertEqual(cp.stderr.count("check passed"), 3, cp.stderr)
        self.assertEqual(rep["command"], [program("leak"), "100"])
        self.assertEqual(rep["exit_status"], 0)
        self.assertIsNone(rep["signal"])
        self.assertEqual(len(rep["processes"]), 1)
        self.assertEqual(rep["processes"][0]["pid"], rep["pid"])
        self.assertEqual(rep["processes"][0]["source"], "exit-report")
        m = by_name(rep)
        self.assertGreaterEqual(m["/gc/heap/objects:objects"], 100)
        # The peak is a high-water mark of live bytes, never below the final value.
        self.assertGreaterEqual(m["/gc/heap/live-peak:bytes"], m["/gc/heap/live:bytes"])
        self.assertEqual(rep["peak"]["/gc/heap/live-peak:bytes"], m["/gc/heap/live-peak:bytes"])
        self.assertGreater(rep["peak"]["/process/memory/rss-peak:bytes"], 100 * 1024)
        self.assertTrue(all(c["passed"] for c in rep["checks"]))

    def test_a_failing_check_exits_1_and_names_the_value(self):
        _, twin = exec_cli("--", program("leak"), "0")
        base = by_name(twin)["/gc/heap/objects:objects"]
        limit = base + 10
        cp, rep = exec_cli("--quiet", "--check", f"/gc/heap/objects:objects <= {limit}", "--",
                           program("leak"), "50")
        self.assertEqual(cp.returncode, 1, cp.stderr)
        # The leak is exact: the twin's live objects plus 50.
        self.assertIn(f"check failed: /gc/heap/objects:objects <= {limit} (found {base + 50})", cp.stderr)
        self.assertNotIn("allocations", cp.stderr)  # --quiet: no summary
        self.assertFalse(rep["checks"][0]["passed"])

    def test_command_status_wins_over_checks(self):
        cp, rep = exec_cli("--check", "/gc/heap/objects:objects < 0", "--", "sh", "-c", "exit 3")
        self.assertEqual(cp.returncode, 3, cp.stderr)
        self.assertEqual(rep["exit_status"], 3)
        self.assertIn("exited with status 3", cp.stderr)

    def test_sigsegv_gives_139_and_a_report_with_what_was_known(self):
        cp, rep = exec_cli("--", program("crash"), "2000", "400")
        self.assertEqual(cp.returncode, 139, cp.stderr)
        self.assertEqual(rep["exit_status"], 139)
        self.assertEqual(rep["signal"], 11)
        self.assertIn("killed by signal 11", cp.stderr)
        (proc,) = rep["processes"]
        # The agent's crash handler wrote the exact final counts.
        self.assertEqual(proc["source"], "exit-report")
        _, twin = exec_cli("--", program("crash"), "0", "0")
        m = by_name(rep)
        self.assertEqual(m["/gc/heap/objects:objects"] - by_name(twin)["/gc/heap/objects:objects"], 2000)
        self.assertFalse(os.path.exists(f"/dev/shm/gometrics.{rep['pid']}"), "the dead process's segment is removed")

    def test_sigkill_after_a_burst_of_new_threads_loses_no_count(self):
        """40 threads claim their slots at once; the process is then killed,
        and the report folds its segment as it was. A thread that found
        another claiming a slot took a private one, which readers see only
        as of the last snapshot (here the publisher's first, as the burst
        began): the old agent's reports missed up to half the threads."""
        threads, k = 40, 500
        env = dict(os.environ, GOMETRICS_INTERVAL_MS="600000")
        cmd = [program("thread_allocs"), str(threads)]
        _, twin = exec_cli("--", *cmd, "0", "together", "killed", env=env)
        for _ in range(5):
            cp, rep = exec_cli("--", *cmd, str(k), "together", "killed", env=env)
            self.assertIn("killed by signal 9", cp.stderr)
            m, t = by_name(rep), by_name(twin)
            self.assertEqual(m["/gc/heap/allocs:objects"] - t["/gc/heap/allocs:objects"], threads * k)
            self.assertEqual(m["/gc/heap/frees:objects"] - t["/gc/heap/frees:objects"], threads * k)

    def test_shell_script_with_three_instrumented_children(self):
        with tempfile.TemporaryDirectory() as d:
            script = os.path.join(d, "run.sh")
            with open(script, "w") as f:
                f.write(f"#!/bin/sh\nset -e\n{program('leak')} 10\n{program('leak')} 20\n{program('leak')} 30\n"
                        "echo all done\n")
            os.chmod(script, 0o755)
            _, solo = exec_cli("--", program("leak"), "0")
            cp, rep = exec_cli("--", script)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(cp.stdout, "leaked 10\nleaked 20\nleaked 30\nall done\n")
        procs = rep["processes"]
        self.assertEqual(len(procs), 4, [(p["pid"], p["command"]) for p in procs])
        leaks = [p for p in procs if p["pid"] != rep["pid"]]
        self.assertTrue(all(p["source"] == "exit-report" for p in leaks))
        # dash ends with _exit(): no exit report, but its segment's last snapshot.
        (shell,) = [p for p in procs if p["pid"] == rep["pid"]]
        self.assertIn(shell["source"], ("exit-report", "segment"))
        self.assertTrue(shell["metrics"])
        live = sorted(by_name(p)["/gc/heap/objects:objects"] for p in leaks)
        base = by_name(solo)["/gc/heap/objects:objects"]
        self.assertEqual(live, [base + 10, base + 20, base + 30])
        # The top-level metrics add up the processes.
        total = sum(by_name(p)["/gc/heap/allocs:objects"] for p in procs)
        self.assertEqual(by_name(rep)["/gc/heap/allocs:objects"], total)
        self.assertIn("4 instrumented processes", cp.stderr)

    def test_a_pipeline_reports_each_limit_once_and_sums_counters(self):
        cp, rep = exec_cli("--", "sh", "-c", f"{program('leak')} 10 | cat | cat")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(cp.stdout, "leaked 10\n")
        procs = [by_name(p) for p in rep["processes"]]
        self.assertGreaterEqual(len(procs), 3, [p["command"] for p in rep["processes"]])
        total = by_name(rep)
        how = {m["name"]: m["aggregation"] for m in rep["metrics"]}
        # The same cgroup and rlimits for all: the tree's limit is that one, not three or four times it.
        for limit in ("/memory/limit:bytes", "/process/fds/limit:fds", "/process/memory/virtual-limit:bytes"):
            self.assertEqual(how[limit], "none")
            self.assertEqual({p[limit] for p in procs}, {total[limit]}, limit)
        # Counters and amounts held now add up; a peak is the largest process's.
        for counter in ("/gc/heap/allocs:objects", "/gc/heap/allocs:bytes", "/process/faults/minor:faults",
                        "/gc/heap/objects:objects", "/sched/threads/total:threads"):
            self.assertEqual(how[counter], "sum")
            self.assertEqual(total[counter], sum(p[counter] for p in procs), counter)
        self.assertEqual(total["/cpu/classes/user:cpu-seconds"],
                         sum(p["/cpu/classes/user:cpu-seconds"] for p in procs))
        self.assertEqual(how["/gc/heap/live-peak:bytes"], "max")
        self.assertEqual(total["/gc/heap/live-peak:bytes"], max(p["/gc/heap/live-peak:bytes"] for p in procs))
        self.assertIn("(largest process)", cp.stderr)
        self.assertIn("(all processes)", cp.stderr)

    def test_a_limit_the_processes_differ_on_is_left_out_of_the_total(self):
        cp, rep = exec_cli("--", "sh", "-c", f"(ulimit -n 100; {program('leak')} 1) | cat")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        limits = {by_name(p)["/process/fds/limit:fds"] for p in rep["processes"]}
        self.assertIn(100, limits)
        self.assertGreater(len(limits), 1)
        self.assertNotIn("/process/fds/limit:fds", by_name(rep))
        # Each process's own value stays in its section, and other limits they share are in the total.
        self.assertIn("/memory/limit:bytes", by_name(rep))

    def test_an_execd_program_reports_as_its_final_image(self):
        _, solo = exec_cli("--", program("leak"), "0")
        cp, rep = exec_cli("--", "sh", "-c", f"true; exec {program('leak')} 7")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        (proc,) = rep["processes"]  # one pid, two images: the shell's, then leak's
        self.assertEqual(proc["source"], "exit-report")
        self.assertEqual(by_name(proc)["/gc/heap/objects:objects"], by_name(solo)["/gc/heap/objects:objects"] + 7)

    def test_bad_check_is_a_usage_error_and_cmd_does_not_run(self):
        with tempfile.TemporaryDirectory() as d:
            marker = os.path.join(d, "ran")
            cp, rep = exec_cli("--check", "/gc/heap/live:bytes < 5 parsecs", "--", "touch", marker)
            self.assertEqual(cp.returncode, 2)
            self.assertIn("invalid check", cp.stderr)
            self.assertIn("parsecs", cp.stderr)
            self.assertFalse(os.path.exists(marker))
            self.assertIsNone(rep)

    def test_missing_command_is_127(self):
        cp, _ = exec_cli("--", "/nonexistent/program")
        self.assertEqual(cp.returncode, 127)
        self.assertIn("cannot run /nonexistent/program", cp.stderr)

    def test_agent_found_without_GOMETRICS_AGENT_and_prepended_to_LD_PRELOAD(self):
        env = dict(os.environ)
        env.pop("GOMETRICS_AGENT", None)
        env["LD_PRELOAD"] = "libm.so.6"
        cp, rep = exec_cli("--", "sh", "-c", "echo \"$LD_PRELOAD\"", env=env)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        first, rest = cp.stdout.strip().split(":", 1)
        self.assertEqual(os.path.realpath(first), os.path.realpath(gmtest.AGENT))
        self.assertEqual(rest, "libm.so.6")
        self.assertEqual(len(rep["processes"]), 1)

    def test_agent_next_to_an_installed_cli_or_a_clear_error(self):
        env = dict(os.environ)
        env.pop("GOMETRICS_AGENT", None)
        env["LD_LIBRARY_PATH"] = ":".join(filter(None, [os.path.dirname(gmtest.AGENT),
                                                        os.path.join(os.path.dirname(CLI), "..", "ipc"),
                                                        env.get("LD_LIBRARY_PATH")]))
        with tempfile.TemporaryDirectory() as prefix:
            os.makedirs(os.path.join(prefix, "bin"))
            cli = os.path.join(prefix, "bin", "gometrics-cli")
            shutil.copy(CLI, cli)
            cp = subprocess.run([cli, "exec", "--", "true"], capture_output=True, text=True, timeout=60, env=env)
            self.assertEqual(cp.returncode, 1)
            self.assertIn("cannot find libgometrics.so", cp.stderr)
            self.assertIn("GOMETRICS_AGENT", cp.stderr)
            os.makedirs(os.path.join(prefix, "lib"))
            shutil.copy(gmtest.AGENT, os.path.join(prefix, "lib", "libgometrics.so"))
            cp = subprocess.run([cli, "exec", "--", "sh", "-c", 'echo "$LD_PRELOAD"'], capture_output=True,
                                text=True, timeout=60, env=env)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertEqual(cp.stdout.strip(), os.path.join(os.path.realpath(prefix), "lib", "libgometrics.so"))
            self.assertIn("1 instrumented process", cp.stderr)


class CheckAndDiff(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.small = os.path.join(cls.dir.name, "small.json")
        cls.big = os.path.join(cls.dir.name, "big.json")
        for path, n in ((cls.small, 100), (cls.big, 1000)):
            cp = subprocess.run([CLI, "exec", "--quiet", "--report", path, "--", program("leak"), str(n)],
                                capture_output=True, text=True, timeout=60)
            assert cp.returncode == 0, cp.stderr
        with open(cls.small) as f:
            cls.small_metrics = by_name(json.load(f))

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_check_on_a_saved_report(self):
        objects = self.small_metrics["/gc/heap/objects:objects"]
        ok = gmtest.cli("check", self.small, f"/gc/heap/objects:objects == {objects}",
                        "/process/memory/rss-peak:bytes > 100KiB")
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertEqual(ok.stdout.count("check passed"), 2)
        bad = gmtest.cli("check", self.small, f"/gc/heap/objects:objects < {objects}", "/no/such:bytes < 1")
        self.assertEqual(bad.returncode, 1)
        self.assertIn(f"(found {objects})", bad.stdout)
        self.assertIn("/no/such:bytes is not present", bad.stdout)
        usage = gmtest.cli("check", self.small, "/gc/heap/objects:objects <")
        self.assertEqual(usage.returncode, 2)
        self.assertIn("missing value", usage.stderr)
        missing = gmtest.cli("check", "/nonexistent.json", "/gc/heap/objects:objects < 1")
        self.assertEqual(missing.returncode, 1)
        self.assertIn("/nonexistent.json", missing.stderr)

    def test_check_reads_the_agents_own_report_too(self):
        _, rep = gmtest.run_with_report([program("leak"), "5"])
        path = os.path.join(self.dir.name, "agent.json")
        with open(path, "w") as f:
            json.dump(rep, f)
        cp = gmtest.cli("check", path, "/gc/heap/objects:objects >= 5")
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)

    def test_diff_shows_relative_changes_and_fails_over_a_threshold(self):
        cp = gmtest.cli("diff", self.small, self.big)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        rows = {line.split()[0]: line for line in cp.stdout.splitlines()[1:]}
        self.assertIn("/gc/heap/allocs-by-size:bytes:count", rows)
        self.assertIn("/gc/heap/allocs-by-size:bytes:p99", rows)
        a = self.small_metrics["/gc/heap/objects:objects"]
        with open(self.big) as f:
            b = by_name(json.load(f))["/gc/heap/objects:objects"]
        self.assertTrue(rows["/gc/heap/objects:objects"].rstrip().endswith(f"{(b - a) / a * 100:+.1f}%"),
                        rows["/gc/heap/objects:objects"])
        fail = gmtest.cli("diff", "--fail-over", "50", self.small, self.big)
        self.assertEqual(fail.returncode, 1)
        self.assertIn("/gc/heap/objects:objects", fail.stderr)
        # The other way round the heap shrinks: no increase over the threshold. (Not every metric:
        # CPU time, faults and context switches of two short runs vary by more than 50%.)
        self.assertEqual(gmtest.cli("diff", "--fail-over", "50", "--only", "/gc/heap/objects", "--only",
                                    "/gc/heap/live", self.big, self.small).returncode, 0)
        # Restricted to metrics that did not grow much.
        only = gmtest.cli("diff", "--fail-over", "50", "--only", "/gc/heap/frees", self.small, self.big)
        self.assertEqual(only.returncode, 0, only.stdout + only.stderr)
        same = gmtest.cli("diff", "--fail-over", "0", self.small, self.small)
        self.assertEqual(same.returncode, 0)
        self.assertNotIn("over", same.stdout)

    def test_diff_does_not_judge_a_raised_limit(self):
        def report(name, limit, allocs, with_aggregation=True):
            rows = [{"name": "/process/fds/limit:fds", "kind": "uint64", "cumulative": False, "value": limit,
                     "aggregation": "none"},
                    {"name": "/gc/heap/allocs:objects", "kind": "uint64", "cumulative": True, "value": allocs,
                     "aggregation": "sum"}]
            if not with_aggregation:  # as an older agent wrote it
                for r in rows:
                    del r["aggregation"]
            path = os.path.join(self.dir.name, name)
            with open(path, "w") as f:
                json.dump({"metrics": rows}, f)
            return path
        for said in (True, False):
            a, b = report("a.json", 1024, 100, said), report("b.json", 4096, 100, said)
            cp = gmtest.cli("diff", "--fail-over", "10", a, b)
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
            self.assertIn("+300.0%", cp.stdout)  # shown, not judged
            c = report("c.json", 1024, 200, said)
            cp = gmtest.cli("diff", "--fail-over", "10", a, c)
            self.assertEqual(cp.returncode, 1, cp.stdout)
            self.assertIn("/gc/heap/allocs:objects", cp.stderr)


@unittest.skipUnless(shutil.which("go"), "go tool pprof (golang-go) is needed: scripts/setup.sh test installs it")
class ExecProfile(unittest.TestCase):
    """`exec --profile KIND=FILE`: the profiles of CMD when it exits, read by `go tool pprof`."""

    def run_exec(self, d, *args):
        cmd = [CLI, "exec", "--quiet", *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, cwd=d)

    def test_heap_allocs_and_mutex_profiles_of_cmd(self):
        from test_profile import go_top, share
        with tempfile.TemporaryDirectory() as d:
            cp = self.run_exec(d, "--profile", "heap=heap.pb.gz", "--profile", "allocs=allocs.pb.gz",
                               "--", "env", "GOMETRICS_PROFILE_RATE=32768", program("profile_sites"), "heap", 16)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertEqual(cp.stdout, "ready\n")
            inuse = go_top(os.path.join(d, "heap.pb.gz"), "inuse_space")
            allocated = go_top(os.path.join(d, "allocs.pb.gz"), "alloc_space")
            cp = self.run_exec(d, "--profile", "mutex=mutex.pb.gz",
                               "--", "env", "GOMETRICS_MUTEX_PROFILE_FRACTION=1", program("profile_sites"), "mutex", 6)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            contentions = go_top(os.path.join(d, "mutex.pb.gz"), "contentions")
        # alpha_site keeps 3/4 of what stays in use, gamma_site frees all of its own.
        self.assertAlmostEqual(share(inuse, "alpha_site", "beta_site"), 0.75, delta=0.10, msg=inuse)
        self.assertLess(inuse.get("gamma_site", 0), 0.05 * inuse["alpha_site"], inuse)
        self.assertGreater(allocated.get("gamma_site", 0), 0.3 * allocated["alpha_site"], allocated)
        self.assertEqual(contentions.get("alpha_lock_site"), 6, contentions)
        self.assertEqual(contentions.get("beta_lock_site"), 6, contentions)

    def test_one_file_per_process_with_pid_in_the_name(self):
        from test_profile import go_top
        with tempfile.TemporaryDirectory() as d:
            sites = program("profile_sites")
            cp = self.run_exec(d, "--profile", "heap=heap.%p.pb.gz", "--", "sh", "-c",
                               f"{sites} heap 4 </dev/null; {sites} heap 4 </dev/null")
            self.assertEqual(cp.returncode, 0, cp.stderr)
            files = sorted(f for f in os.listdir(d) if f.startswith("heap."))
            # The two children; dash itself ends with _exit and writes no report.
            self.assertEqual(len(files), 2, (files, cp.stderr))
            for f in files:
                self.assertIn("alpha_site", go_top(os.path.join(d, f), "inuse_space"))

    def test_cmd_without_a_report_fails_with_one_line(self):
        with tempfile.TemporaryDirectory() as d:
            cp = self.run_exec(d, "--profile", "heap=heap.pb.gz", "--", "sh", "-c", "kill -9 $$")
            self.assertEqual(cp.returncode, 137, cp.stderr)
            self.assertEqual(cp.stderr.count("\n"), 1, cp.stderr)
            self.assertIn("no heap profile in heap.pb.gz", cp.stderr)
            self.assertFalse(os.path.exists(os.path.join(d, "heap.pb.gz")))
            # A profile kind the process does not sample: one line, status 1.
            cp = self.run_exec(d, "--profile", "mutex=mutex.pb.gz", "--", "env", "GOMETRICS_MUTEX_PROFILE_FRACTION=0",
                               program("leak"), "10")
            self.assertEqual(cp.returncode, 1, cp.stderr)
            self.assertEqual(cp.stderr.count("\n"), 1, cp.stderr)
            self.assertIn("does not sample lock contention", cp.stderr)

    def test_bad_kind_is_a_usage_error_and_cmd_does_not_run(self):
        with tempfile.TemporaryDirectory() as d:
            marker = os.path.join(d, "ran")
            for bad in ("cpu=x.pb.gz", "heap", "heap=", "=x.pb.gz"):
                cp = self.run_exec(d, "--profile", bad, "--", "touch", marker)
                self.assertEqual(cp.returncode, 2, (bad, cp.stderr))
                self.assertEqual(cp.stderr.count("\n"), 1, cp.stderr)
                self.assertIn(f'--profile "{bad}"', cp.stderr)
                self.assertFalse(os.path.exists(marker))


if __name__ == "__main__":
    gmtest.main()
