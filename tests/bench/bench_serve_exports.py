#!/usr/bin/env python3
"""What serve's pprof endpoints and OTLP push cost with many processes.

    GOMETRICS_BUILD_ROOT=build python3 tests/bench/bench_serve_exports.py [N]

Starts N (default 100) instrumented `phases 2` (2 MiB allocated in one
sampled site, then idle), serves them, and measures:
  - one /debug/pprof/heap fetch per process, in turn: wall time (median, p90)
    and serve's CPU per fetch, with fresh snapshots (default) and without;
  - OTLP pushes of all N processes every second to a local receiver that
    only counts: serve's CPU per push and the request size.
Every process is killed and its segment removed at the end. Prints a table."""

import http.server
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

BUILD = os.environ.get("GOMETRICS_BUILD_ROOT", "build")
AGENT = os.path.join(BUILD, "agent", "libgometrics.so")
CLI = os.path.join(BUILD, "cli", "gometrics-cli")
PHASES = os.path.join(BUILD, "tests", "phases")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / TICKS


def start_serve(*args):
    proc = subprocess.Popen([CLI, "serve", "--listen", "127.0.0.1:0", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    port = int(line.rsplit(":", 1)[1].split("/")[0])
    return proc, f"http://127.0.0.1:{port}"


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)


def pprof_rounds(pids, fresh_ms):
    """Two passes over every process: the first builds each symbolizer, the second reuses it."""
    serve, url = start_serve(*[a for p in pids for a in ("--pid", str(p))], "--fresh-timeout-ms", str(fresh_ms))
    out = []
    try:
        for _ in range(2):
            times, sizes = [], []
            before = cpu_seconds(serve.pid)
            for pid in pids:
                start = time.monotonic()
                with urllib.request.urlopen(f"{url}/debug/pprof/heap?pid={pid}", timeout=60) as r:
                    sizes.append(len(r.read()))
                times.append(time.monotonic() - start)
            cpu = (cpu_seconds(serve.pid) - before) / len(pids)
            times.sort()
            out.append((statistics.median(times), times[int(0.9 * len(times))], sum(times), cpu,
                        statistics.median(sizes)))
        with open(f"/proc/{serve.pid}/status") as f:
            status = {line.split(":")[0]: int(line.split()[1]) for line in f if line.startswith("Rss")}
        print(f"serve's memory after fetching from {len(pids)} processes twice: "
              f"anonymous {status['RssAnon'] / 1024:.1f} MiB, file pages {status['RssFile'] / 1024:.1f} MiB")
    finally:
        stop(serve)
    return out


class Counter(http.server.BaseHTTPRequestHandler):
    count = 0
    size = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Counter.count += 1
        Counter.size = len(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def otlp_round(pids, seconds=12, compression="none"):
    Counter.count = 0
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    os.environ["OTEL_EXPORTER_OTLP_COMPRESSION"] = compression
    serve, _ = start_serve(*[a for p in pids for a in ("--pid", str(p))], "--otlp",
                           f"http://127.0.0.1:{receiver.server_address[1]}", "--otlp-interval", "1")
    try:
        while Counter.count == 0:
            time.sleep(0.05)
        before_cpu, before_count = cpu_seconds(serve.pid), Counter.count
        time.sleep(seconds)
        pushes = Counter.count - before_count
        cpu = (cpu_seconds(serve.pid) - before_cpu) / max(pushes, 1)
    finally:
        stop(serve)
        receiver.shutdown()
    return pushes, cpu, Counter.size


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    env = dict(os.environ, LD_PRELOAD=os.path.abspath(AGENT), GOMETRICS_PROFILE_RATE="65536")
    procs = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([PHASES, "2"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          text=True))
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        pids = [p.pid for p in procs]
        print(f"{n} instrumented processes (phases 2, GOMETRICS_PROFILE_RATE=65536)")
        print("| measurement | median ms | p90 ms | all, s | serve CPU each, ms | size KiB |")
        print("|---|---|---|---|---|---|")
        for fresh in (50, 0):
            for label, (med, p90, total, cpu, size) in zip(("first", "again"), pprof_rounds(pids, fresh)):
                print(f"| /debug/pprof/heap, {label}, --fresh-timeout-ms {fresh} | {med * 1e3:.1f} | "
                      f"{p90 * 1e3:.1f} | {total:.2f} | {cpu * 1e3:.1f} | {size / 1024:.1f} |")
        for compression in ("none", "gzip"):
            pushes, cpu, size = otlp_round(pids, compression=compression)
            print(f"| OTLP push of all {n}, compression {compression} ({pushes} pushes) | | | | {cpu * 1e3:.1f} | "
                  f"{size / 1024:.1f} |")
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
            stale = f"/dev/shm/gometrics.{p.pid}"
            if os.path.exists(stale):
                os.unlink(stale)


if __name__ == "__main__":
    main()
