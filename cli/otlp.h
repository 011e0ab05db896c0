// `serve --otlp`: every instrumented process's metrics pushed as OTLP/HTTP
// protobuf (opentelemetry-proto's ExportMetricsServiceRequest) to a
// Collector, configured by the standard OTEL_EXPORTER_OTLP_* variables.
//
// The message is written with the CLI's own protobuf wire-format writer
// (pprof.h), fields in ascending number order as protobuf's own encoders
// write them. One ResourceMetrics per process; its Resource carries
// process.pid, process.executable.name, process.command_line, service.name
// and host.name. Metrics keep the names of OpenTelemetry's process semantic
// conventions where one exists (process.cpu.time, process.memory.usage, ...,
// kProcessConventions), and otherwise "gometrics." + the Go name with '/'
// turned into '.' and the unit word last ("/gc/heap/allocs:bytes" is
// gometrics.gc.heap.allocs.bytes, unit "By"): one OTLP metric per Go metric.
// Cumulative scalars are monotonic cumulative Sums, other scalars Gauges,
// histograms cumulative explicit-bounds Histograms with every Go bucket.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "serve.h"

namespace httplib {
class Client;
}

namespace gometrics::cli::otlp {

// ---- Encoding ----------------------------------------------------------------

struct Attribute {
    std::string key;
    std::variant<std::string, int64_t> value;
};

// One process to export: its snapshot, and what its Resource says.
struct ProcessExport {
    const serve::Process* process = nullptr;
    std::vector<Attribute> resource;  // process.pid, service.name, ...
};

// How a metric of the semantic conventions is fed by a Go metric.
struct Convention {
    std::string_view go_name;  // "/cpu/classes/user:cpu-seconds"
    std::string_view name;     // "process.cpu.time"
    std::string_view unit;     // UCUM: "s"
    std::string_view description;
    enum class Kind { MonotonicSum, UpDownSum, Gauge } kind;
    std::string_view attribute_key;    // "" for none, else one data-point attribute
    std::string_view attribute_value;  // "user"
};
extern const std::vector<Convention> kProcessConventions;

// The OTLP name and UCUM unit of a Go metric outside kProcessConventions:
// {"gometrics.gc.heap.allocs.bytes", "By"}; "s" for seconds and cpu-seconds,
// "{objects}" for another unit word. nullopt for a name not in Go's shape.
std::optional<std::pair<std::string, std::string>> own_name(std::string_view go_name);

// A Go histogram as OTLP explicit bounds and counts. OTLP buckets hold
// (bound[i-1], bound[i]], Go's [edge[i], edge[i+1]): each finite edge becomes
// the largest double below it, so a bucket holds the same values; a finite
// first or last Go edge adds an empty bucket below or above.
struct Buckets {
    std::vector<double> bounds;
    std::vector<uint64_t> counts;  // bounds.size() + 1
};
Buckets explicit_buckets(const Float64Histogram& h);

// The serialized ExportMetricsServiceRequest.
std::string encode_request(const std::vector<ProcessExport>& processes, std::string_view scope_version);

// The Resource attributes of a process: service.name is OTEL_SERVICE_NAME
// when set, else the process's command name; OTEL_RESOURCE_ATTRIBUTES
// (k=v,... percent-encoded) adds to them; the process's own attributes win
// over the latter. Reads /proc/PID/exe and /proc/PID/cmdline.
std::vector<Attribute> resource_of(const serve::Process& p, const std::string& host_name,
                                   const std::function<const char*(const char*)>& getenv);

// ---- Configuration ---------------------------------------------------------

struct Config {
    std::string url;  // http://host:port/path
    std::vector<std::pair<std::string, std::string>> headers;
    std::chrono::milliseconds interval{60000};
    std::chrono::milliseconds timeout{10000};
    bool gzip = false;  // Content-Encoding: gzip (OTEL_EXPORTER_OTLP_[METRICS_]COMPRESSION=gzip)
};

// The configuration from `--otlp [URL]` and the environment, as the OTLP
// exporter specification has it: URL when given (a URL without a path gets
// /v1/metrics, as OTEL_EXPORTER_OTLP_ENDPOINT does), else
// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT as is, else OTEL_EXPORTER_OTLP_ENDPOINT
// + "/v1/metrics", else http://localhost:4318/v1/metrics. Headers from
// OTEL_EXPORTER_OTLP_HEADERS, then OTEL_EXPORTER_OTLP_METRICS_HEADERS (which
// win); the timeout from OTEL_EXPORTER_OTLP_[METRICS_]TIMEOUT (ms), gzip
// from OTEL_EXPORTER_OTLP_[METRICS_]COMPRESSION (gzip or none); the
// interval is interval_s when given, else OTEL_METRIC_EXPORT_INTERVAL (ms),
// else 60 s. An error (one line) for a URL that is not http:// (this build
// has no TLS) or a malformed variable (OTEL_RESOURCE_ATTRIBUTES included).
Result<Config> configure(const std::optional<std::string>& url, std::optional<int> interval_s,
                         const std::function<const char*(const char*)>& getenv);

// ---- The exporter ----------------------------------------------------------

// Pushes on its own thread, every Config::interval, so that neither a slow
// nor a dead collector delays an HTTP request of serve. A failed push is
// retried with exponential backoff (1 s, doubling, at most 32 s) until the
// next interval's push replaces it (cumulative values lose nothing by a
// dropped push); failures are logged once, and the recovery once.
class Exporter {
public:
    using Log = std::function<void(const std::string&)>;
    Exporter(Config config, serve::Collector& collector, Log log);
    ~Exporter();  // stops
    void stop();

    uint64_t exports() const { return exports_; }
    uint64_t failures() const { return failures_; }

private:
    void run();
    // The request body for what the collector reads now.
    std::string body();
    // One POST: "" on success, else why; `retry` says whether trying again may help.
    std::string post(const std::string& body, bool& retry);
    // Waits up to d; false when stopping.
    bool wait(std::chrono::milliseconds d);

    Config config_;
    serve::Collector& collector_;
    Log log_;
    std::string host_name_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    bool failing_ = false;  // a failure was logged and no push has succeeded since
    httplib::Client* active_ = nullptr;  // the push in flight, guarded by mu_: stop() cuts it short
    std::atomic<uint64_t> exports_{0}, failures_{0};
    std::thread thread_;
};

}  // namespace gometrics::cli::otlp
