"""The Grafana dashboard (dashboards/gometrics.json) against a real Prometheus
(Debian's package) scraping `gometrics-cli serve`: every panel's query, with
the dashboard's variables set to the processes under test, returns data
through Prometheus's HTTP API, and every variable query finds them."""

import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import gmserve
import gmtest
from gmserve import Serve
from test_prometheus import install_prometheus, running_prometheus

HERE = os.path.dirname(__file__)

DASHBOARD = os.path.join(os.environ.get("GOMETRICS_SOURCE_ROOT", os.path.join(HERE, "..", "..")),
                         "dashboards", "gometrics.json")
RATE_WINDOW = "10s"  # $__rate_interval: ten scrapes at the 1 s interval below
DEADLINE_S = 90
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range"}


def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def panels(dash):
    """Every panel, those inside collapsed rows included."""
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])


def exprs(dash):
    """(panel title, expr) of every query of every panel."""
    return [(p["title"], t["expr"]) for p in panels(dash) for t in p.get("targets", [])]


class Structure(unittest.TestCase):
    """What Grafana needs to import the file, checked without Grafana."""

    def test_variables_panels_and_data_sources(self):
        dash = load_dashboard()
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        for name in ("comm", "pid"):
            self.assertEqual(variables[name]["type"], "query")
            self.assertTrue(variables[name]["multi"] and variables[name]["includeAll"])
        titles = {p["title"] for p in panels(dash) if p["type"] != "row"}
        for wanted in ("Live heap", "Memory classes", "Threads", "Lock contention", "CPU", "Scheduler latency p99"):
            self.assertIn(wanted, titles)
        ids = [p["id"] for p in panels(dash)]
        self.assertEqual(len(ids), len(set(ids)))
        for p in panels(dash):
            if p["type"] == "row":
                continue
            self.assertEqual(p["datasource"]["uid"], "${datasource}", p["title"])
            self.assertTrue(p["targets"], p["title"])
            refs = [t["refId"] for t in p["targets"]]
            self.assertEqual(len(refs), len(set(refs)), p["title"])
        for title, expr in exprs(dash):
            used = set(re.findall(r"\$\{?(\w+)", expr))
            self.assertFalse(used - set(variables) - GRAFANA_BUILTINS, (title, expr))
            # Every query is per process: it filters on the variables.
            self.assertIn('pid=~"$pid"', expr, title)
            self.assertIn('comm=~"$comm"', expr, title)


class AgainstPrometheus(unittest.TestCase):
    def setUp(self):
        self.prometheus, why = install_prometheus()
        if not self.prometheus:
            print(f"skipping: the prometheus package cannot be installed here: {why}", file=sys.stderr)
            self.skipTest(f"prometheus cannot be installed: {why}")

    def api(self, port, path, **params):
        url = f"http://127.0.0.1:{port}/api/v1/{path}?" + urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                doc = json.load(r)
        except OSError:
            return None  # not up yet
        return doc["data"] if doc.get("status") == "success" else None

    def query_with_data(self, port, expr, deadline):
        """The result of an instant query once it has a sample that is a number; [] at the deadline."""
        result = []
        while time.monotonic() < deadline:
            result = (self.api(port, "query", query=expr) or {}).get("result", [])
            if any(not math.isnan(float(r["value"][1])) for r in result):
                return result
            time.sleep(1)
        return result

    def test_every_panel_query_returns_data(self):
        dash = load_dashboard()
        # A service-like workload (threads, allocations, a contended mutex)
        # and an idle system Python: two commands for the variables to pick.
        demo = [gmtest.program("demo"), "300", "4"]
        idle = ["/usr/bin/python3", "-c", "import time; time.sleep(300)"]
        with tempfile.TemporaryDirectory() as tmp, gmserve.Instrumented(demo) as app, \
                gmserve.Instrumented(idle) as py, Serve("--pid", app.pid, "--pid", py.pid) as srv:
            with running_prometheus(self.prometheus, tmp, srv.port) as (_prom, port, log):
                deadline = time.monotonic() + DEADLINE_S
                up = self.query_with_data(port, 'up{job="gometrics"} == 1', deadline)
                log.seek(0)
                self.assertTrue(up, f"serve never scraped; prometheus said:\n{log.read()[-3000:]}")

                # The variable queries, as Grafana runs them: label_values(SELECTOR, LABEL).
                values = {"instance": ".*", "comm": ".*", "pid": ".*"}
                found = {}
                for v in dash["templating"]["list"]:
                    if v["type"] != "query":
                        continue
                    m = re.fullmatch(r"label_values\((.*), (\w+)\)", v["query"]["query"])
                    self.assertIsNotNone(m, v["query"])
                    selector = m.group(1)
                    for name, value in values.items():
                        selector = selector.replace(f"${name}", value)
                    found[v["name"]] = self.api(port, f"label/{m.group(2)}/values", **{"match[]": selector}) or []
                self.assertIn("demo", found["comm"])
                self.assertIn("python3", found["comm"])
                self.assertIn(str(app.pid), found["pid"])
                self.assertIn(str(py.pid), found["pid"])

                # Each panel query, for the two processes picked in the variables.
                variables = {"$instance": ".*", "$comm": "demo|python3", "$pid": f"{app.pid}|{py.pid}",
                             "$__rate_interval": RATE_WINDOW}
                # rate() needs two scrapes within its window.
                time.sleep(3)
                empty = []
                for title, expr in exprs(dash):
                    query = expr
                    for name, value in variables.items():
                        query = query.replace(name, value)
                    result = self.query_with_data(port, query, deadline)
                    pids = {r["metric"].get("pid") for r in result}
                    shown = ", ".join(f'{r["metric"].get("comm")}={float(r["value"][1]):.4g}' for r in result[:2])
                    print(f"{title}: {len(result)} series ({shown}): {query}", file=sys.stderr)
                    if not result or not pids <= {str(app.pid), str(py.pid)}:
                        empty.append((title, query, result))
                    # The workload shows in every panel.
                    elif str(app.pid) not in pids:
                        empty.append((title, query, result))
                log.seek(0)
                self.assertEqual(empty, [], f"queries without data; prometheus said:\n{log.read()[-2000:]}")


if __name__ == "__main__":
    gmtest.main()
