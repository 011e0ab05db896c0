// What `gometrics-cli serve` answers, without the HTTP: reading every live
// instrumented process once per request, and the three renderings (Prometheus
// or OpenMetrics page, JSON, HTML). cmd_serve.cpp only routes requests here.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "prometheus.h"
#include "reader.h"

namespace gometrics::cli::serve {

struct Options {
    std::string ns{prom::kDefaultNamespace};  // replaces client_golang's "go"; may be empty
    std::vector<int> pids;                    // only these processes; empty: every one we may read
    // How long one request waits, in all, for the fresh snapshots it asks every
    // process for (they are asked all at once; see Collector::collect).
    int fresh_timeout_ms = 50;
};

// One process as read by a request.
struct Process {
    prom::ProcessSnapshot snapshot;  // pid, comm, descs, values
    uint64_t start_time_ns = 0;      // CLOCK_REALTIME when the agent started in it
    uint64_t time_ns = 0;            // CLOCK_REALTIME of the snapshot
    uint64_t proc_start_ticks = 0;   // field 22 of /proc/PID/stat, from the segment's header
};

// When a process started, in seconds since the Unix epoch, as client_golang
// computes process_start_time_seconds: the boot time (btime of /proc/stat)
// plus the process's start in clock ticks since boot. nullopt without a
// boot time or start ticks.
std::optional<double> start_time_seconds(uint64_t proc_start_ticks);

struct Collection {
    std::vector<Process> processes;  // read, sorted by pid
    int errors = 0;                  // listed processes dropped because their read failed
    std::vector<int> failed;         // their pids
};

// A process of the listing that is worth showing (HTML index).
struct Listed {
    int pid = 0;
    std::string comm;
    uint64_t start_time_ns = 0;
};

// Reads processes for requests. Thread-safe: collections run one at a time,
// so concurrent scrapers cannot multiply the load on the processes.
class Collector {
public:
    using Log = std::function<void(const std::string&)>;
    Collector(Options options, Log log);

    // Lists /dev/shm and reads each live process we may read (and that
    // Options::pids, and `only` when given, admit).
    Collection collect(std::optional<int> only = std::nullopt);
    // The same from a given listing (tests plant theirs). First every
    // process is opened and asked for a fresh snapshot, then each is waited
    // for against one deadline (Options::fresh_timeout_ms from the first
    // request), then read: publishers work in parallel and a stopped process
    // costs the deadline once, not per process; a process that did not
    // answer in time gives its latest snapshot (at most its publishing
    // interval old). A process whose segment vanished or is corrupt
    // is dropped, counted in errors, and logged once until it reads
    // again or leaves the listing. Segments of other users (not readable by
    // us) and of dead processes are skipped silently.
    Collection collect_from(const std::vector<ProcessInfo>& listed, std::optional<int> only = std::nullopt);

    // The /metrics page: every process, then serve's own metrics.
    std::string metrics_page(bool openmetrics);
    // /api/v1/processes: a JSON array, one `dump --format json` document per
    // process with comm, start_time_ns and uptime_seconds added.
    std::string processes_json();
    // /api/v1/processes/<pid>: that document; nullopt when pid is not a live
    // process we export. An error when its read failed.
    std::optional<Result<std::string>> process_json(int pid);
    // `/`: an HTML index of the live processes, linking to the JSON and /metrics.
    std::string index_html();

    // More of serve's own families for every /metrics page (the OTLP
    // exporter's counts); called without the collection lock held.
    void set_extra_families(std::function<std::vector<prom::Family>()> extra);

private:
    bool admitted(int pid) const;
    void log_failure(int pid, const std::string& message);
    std::vector<Listed> live_listing();

    Options options_;
    Log log_;
    std::mutex mu_;                      // serialises collections; guards what follows
    std::map<int, std::string> logged_;  // pid -> the error already logged for it
    uint64_t scrapes_ = 0;               // /metrics pages served
    uint64_t read_errors_ = 0;           // processes dropped from /metrics pages
    std::function<std::vector<prom::Family>()> extra_;  // set before serving starts
};

// The JSON document of one process: `dump --format json`'s (pid, metrics,
// time_ns) plus comm, start_time_ns and uptime_seconds.
nlohmann::ordered_json process_document(const Process& p);

// s with the five HTML special characters escaped.
std::string html_escape(std::string_view s);

// Whether an Accept-Encoding header admits gzip ("gzip", "x-gzip" or "*",
// with a q above 0).
bool accepts_gzip(std::string_view accept_encoding);
// body as a gzip member (zlib, fastest level); nullopt if zlib fails.
std::optional<std::string> gzip(std::string_view body);

// A family of one unlabelled sample.
prom::Family scalar_family(std::string name, std::string help, prom::Type type, double value);

// Serve's own families: scrape duration, processes exported, read errors, scrapes.
std::vector<prom::Family> own_families(std::string_view ns, double scrape_seconds, size_t processes,
                                       uint64_t read_errors, uint64_t scrapes);

}  // namespace gometrics::cli::serve
