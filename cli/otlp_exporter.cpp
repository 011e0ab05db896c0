// The OTLP/HTTP push of `serve --otlp`: its own thread, its own HTTP client
// (cpp-httplib), retries with backoff; see otlp.h.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <regex>

#include <fmt/format.h>
#include <httplib.h>

#include "otlp.h"

namespace gometrics::cli::otlp {

namespace {

constexpr auto kFirstBackoff = std::chrono::seconds(1);
constexpr auto kMaxBackoff = std::chrono::seconds(32);

// What the OTLP specification says a client may retry: throttling and the
// server being unavailable for now.
bool retryable(int status) { return status == 429 || status == 502 || status == 503 || status == 504; }

struct Target {
    std::string origin;  // http://host:port
    std::string path;
};

Target split(const std::string& url) {
    static const std::regex kUrl(R"(^(http://[^/]+)(/.*)$)");
    std::smatch m;
    if (std::regex_match(url, m, kUrl)) return {m[1].str(), m[2].str()};
    return {url, "/"};
}

}  // namespace

Exporter::Exporter(Config config, serve::Collector& collector, Log log)
    : config_(std::move(config)), collector_(collector), log_(std::move(log)) {
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    host_name_ = host;
    thread_ = std::thread([this] { run(); });
}

Exporter::~Exporter() { stop(); }

void Exporter::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
        // A collector that takes the request and never answers would hold
        // serve's exit for the whole timeout.
        if (active_) active_->stop();
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

bool Exporter::wait(std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    return !cv_.wait_for(lock, d, [&] { return stopping_; });
}

std::string Exporter::body() {
    const serve::Collection c = collector_.collect();
    std::vector<ProcessExport> processes;
    for (const serve::Process& p : c.processes)
        processes.push_back({&p, resource_of(p, host_name_, [](const char* n) { return std::getenv(n); })});
    return encode_request(processes, GOMETRICS_VERSION);
}

std::string Exporter::post(const std::string& body, bool& retry) {
    const Target t = split(config_.url);
    httplib::Client client(t.origin);
    const auto timeout = std::chrono::duration_cast<std::chrono::microseconds>(config_.timeout);
    client.set_connection_timeout(timeout);
    client.set_read_timeout(timeout);
    client.set_write_timeout(timeout);
    httplib::Headers headers;
    for (const auto& [k, v] : config_.headers) headers.emplace(k, v);
    std::optional<std::string> packed;
    if (config_.gzip && (packed = serve::gzip(body))) headers.emplace("Content-Encoding", "gzip");
    {
        std::lock_guard lock(mu_);
        if (stopping_) return "serve is stopping";
        active_ = &client;
    }
    httplib::Request req;
    req.method = "POST";
    req.path = t.path;
    req.headers = std::move(headers);
    req.set_header("Content-Type", "application/x-protobuf");
    req.body = packed ? std::move(*packed) : body;
    // The collector's answer is read and dropped but for its start, which
    // the log quotes: a long one costs no memory. The timeout bounds the
    // whole export, as OTLP has it, not each read: a collector that sends a
    // byte now and then cannot hold the pushes.
    std::string detail;
    req.content_receiver = [&detail](const char* data, size_t n, uint64_t, uint64_t) {
        if (detail.size() < 200) detail.append(data, std::min(n, 200 - detail.size()));
        return true;
    };
    const auto deadline = std::chrono::steady_clock::now() + config_.timeout;
    req.progress = [deadline](uint64_t, uint64_t) { return std::chrono::steady_clock::now() < deadline; };
    const auto res = client.send(req);
    {
        std::lock_guard lock(mu_);
        active_ = nullptr;
    }
    if (!res) {
        retry = true;
        const bool late = res.error() == httplib::Error::Canceled;
        return fmt::format("{} ({})", late ? "no whole answer within the timeout" : httplib::to_string(res.error()),
                           config_.url);
    }
    if (res->status >= 200 && res->status < 300) return "";
    retry = retryable(res->status);
    std::replace(detail.begin(), detail.end(), '\n', ' ');
    return fmt::format("HTTP {} from {}{}{}", res->status, config_.url, detail.empty() ? "" : ": ", detail);
}

void Exporter::run() {
    auto next = std::chrono::steady_clock::now() + config_.interval;
    while (wait(std::chrono::duration_cast<std::chrono::milliseconds>(next - std::chrono::steady_clock::now()))) {
        next += config_.interval;
        // A late push (a slow collection or collector) starts the schedule afresh.
        if (next < std::chrono::steady_clock::now()) next = std::chrono::steady_clock::now() + config_.interval;
        bool retry = false;
        std::chrono::milliseconds backoff = kFirstBackoff;
        for (;;) {
            const std::string error = post(body(), retry);
            if (!error.empty()) {
                // Cut short by serve's stop: not the collector's failure.
                std::lock_guard lock(mu_);
                if (stopping_) return;
            }
            if (error.empty()) {
                ++exports_;
                if (failing_) log_(fmt::format("OTLP export to {} works again", config_.url));
                failing_ = false;
                break;
            }
            ++failures_;
            if (!failing_)
                log_(fmt::format("OTLP export failed: {}; {} (logged once until an export succeeds)", error,
                                 retry ? "retrying with backoff" : "dropped: the collector refuses it"));
            failing_ = true;
            // The next interval's push carries newer cumulative values: no
            // retry runs into it.
            if (!retry || std::chrono::steady_clock::now() + backoff >= next) break;
            if (!wait(backoff)) return;
            backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxBackoff);
        }
    }
}

}  // namespace gometrics::cli::otlp
