"""Helpers for tests of `gometrics-cli serve`: start it on a free loopback
port, fetch its pages, stop it and collect what it logged."""

import os
import select
import signal
import subprocess
import time
import urllib.error
import urllib.request

import gmtest

PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


class Serve:
    """`gometrics-cli serve --listen 127.0.0.1:0 ARGS...`, as a context manager.
    The port comes from the line serve prints once it listens."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([gmtest.CLI, "serve", "--listen", "127.0.0.1:0", *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.port = None
        self.stderr = ""
        self.returncode = None

    def __enter__(self):
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("listening on http://127.0.0.1:"):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise AssertionError(f"serve did not start: {line!r} {err}")
        self.port = int(line.rsplit(":", 1)[1].split("/")[0])
        return self

    def stop(self):
        """SIGTERM, as a service manager would; returns serve's exit status."""
        if self.returncode is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                _, self.stderr = self.proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                _, self.stderr = self.proc.communicate(timeout=10)
            self.returncode = self.proc.returncode
        return self.returncode

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def get(self, path, accept=None, timeout=20):
        """(status, content type, body) of GET path; HTTP errors are results, not exceptions."""
        req = urllib.request.Request(self.url + path, headers={"Accept": accept} if accept else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.headers.get("Content-Type", ""), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def sample_value(page, name, pid):
    """Value of the series NAME{...,pid="PID"} in a text exposition page, or None."""
    for line in page.splitlines():
        if line.startswith(name + "{") and f'pid="{pid}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def own_value(page, name):
    """Value of an unlabelled series (serve's own metrics)."""
    for line in page.splitlines():
        if line.startswith(name + " "):
            return float(line.split(" ")[1])
    return None


def wait_until(predicate, timeout, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def live_plain_process():
    """A `sleep` without the agent, to own a planted segment name."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    return subprocess.Popen(["sleep", "60"], env=env)


class Instrumented(gmtest.Spawned):
    """gmtest.Spawned that also removes the segment its SIGKILL leaves behind."""

    def __exit__(self, *exc):
        super().__exit__(*exc)
        stale = f"/dev/shm/gometrics.{self.proc.pid}"
        if os.path.exists(stale):
            os.unlink(stale)
