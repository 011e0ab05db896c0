"""GOMETRICS_TRACE: one line per interval, in the documented format (docs/agent.md, "Trace lines")."""

import os
import re
import subprocess
import tempfile
import unittest

import gmtest
from gmtest import metrics, program

BYTES = r"(?:\d+(?:\.\d+)?(?:B|KiB|MiB|GiB|TiB))"
COUNT = r"(?:\d+(?:\.\d+)?[kMG]?)"
SECONDS = r"(?:0s|\d+(?:\.\d+)?(?:ns|us|ms|s))"
LINE = re.compile(
    rf"^gometrics (?P<pid>\d+) @(?P<t>\d+\.\d{{3}})s(?P<exit> exit)?: "
    rf"live (?P<live>-|{BYTES}) peak (?P<peak>-|{BYTES}), "
    rf"alloc (?P<alloc_bytes>-|{BYTES}/s) (?P<alloc_objects>-|{COUNT}/s), "
    rf"threads (?P<threads>-|{COUNT}), "
    rf"mutex-wait (?P<mutex>-|{SECONDS}/s), "
    rf"cpu (?P<cpu>-|\d+(?:\.\d+)?%), "
    rf"rss (?P<rss>-|{BYTES})$")

UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "TiB": 1024 ** 4}


def parse_bytes(s):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(B|KiB|MiB|GiB|TiB)", s)
    return float(m.group(1)) * UNITS[m.group(2)]


class Trace(unittest.TestCase):
    def test_lines_to_a_file_parse_and_match_the_report(self):
        with tempfile.TemporaryDirectory() as d:
            trace = os.path.join(d, "trace.%p.log")
            cp, rep = gmtest.run_with_report([program("grow"), "1", "64"],
                                             {"GOMETRICS_TRACE": trace, "GOMETRICS_INTERVAL_MS": "200"})
            (name,) = os.listdir(d)  # the report's temporary directory is another one
            self.assertEqual(name, f"trace.{rep['pid']}.log")
            with open(os.path.join(d, name)) as f:
                lines = f.read().splitlines()
        self.assertEqual(cp.stderr, "")
        # About 1 s at 200 ms: some interval lines, then exactly one exit line, last.
        self.assertGreaterEqual(len(lines), 3, lines)
        parsed = []
        for line in lines:
            m = LINE.match(line)
            self.assertIsNotNone(m, line)
            parsed.append(m)
        self.assertTrue(all(int(m["pid"]) == rep["pid"] for m in parsed))
        self.assertEqual([bool(m["exit"]) for m in parsed], [False] * (len(parsed) - 1) + [True])
        times = [float(m["t"]) for m in parsed]
        self.assertEqual(times, sorted(times))
        # grow allocates 64 KiB every 10 ms and frees nothing: the live heap only grows,
        # and mid-run the allocation rate is in the MiB/s.
        lives = [parse_bytes(m["live"]) for m in parsed]
        self.assertEqual(lives, sorted(lives))
        self.assertTrue(any(parse_bytes(m["alloc_bytes"][:-2]) > 1024 ** 2 for m in parsed[1:-1]), lines)
        # The exit line shows the final snapshot, as the report does (3 significant digits).
        final = metrics(rep)
        self.assertAlmostEqual(parse_bytes(parsed[-1]["live"]), final["/gc/heap/live:bytes"],
                               delta=final["/gc/heap/live:bytes"] * 0.01)
        self.assertAlmostEqual(parse_bytes(parsed[-1]["peak"]), final["/gc/heap/live-peak:bytes"],
                               delta=final["/gc/heap/live-peak:bytes"] * 0.01)
        # Metrics this build does not publish print as "-", never as 0.
        for m in parsed:
            for field, name in (("threads", "/sched/threads/total:threads"),
                                ("rss", "/process/memory/rss:bytes"),
                                ("mutex", "/sync/mutex/wait/total:seconds")):
                if name not in final:
                    self.assertEqual(m[field], "-")
                else:
                    self.assertNotEqual(m[field], "-")

    def test_stderr_with_1_and_off_by_default(self):
        env = {"GOMETRICS_TRACE": "1", "GOMETRICS_INTERVAL_MS": "100"}
        cp = subprocess.run([program("grow"), "1", "8"], env=gmtest.agent_env(env), capture_output=True, text=True,
                            timeout=60)
        self.assertEqual(cp.returncode, 0)
        lines = cp.stderr.splitlines()
        self.assertGreaterEqual(len(lines), 3)
        for line in lines:
            self.assertRegex(line, LINE)
        cp = subprocess.run([program("leak"), "1"], env=gmtest.agent_env(), capture_output=True, text=True,
                            timeout=60)
        self.assertEqual(cp.stderr, "")

    def test_unwritable_trace_file_says_so_once_and_the_program_runs(self):
        cp = subprocess.run([program("leak"), "1"], env=gmtest.agent_env({"GOMETRICS_TRACE": "/nonexistent/t.log"}),
                            capture_output=True, text=True, timeout=60)
        self.assertEqual(cp.returncode, 0)
        self.assertEqual(cp.stdout, "leaked 1\n")
        self.assertEqual(len(cp.stderr.splitlines()), 1, cp.stderr)
        self.assertIn("GOMETRICS_TRACE", cp.stderr)


if __name__ == "__main__":
    gmtest.main()
