// The serve module: `serve` (options in cmd_serve.cpp) is an HTTP server (cpp-httplib) exporting every live instrumented
// process to Prometheus (/metrics), as JSON (/api/v1/processes[/<pid>]), as
// pprof profiles (/debug/pprof/, Go's net/http/pprof paths) and as an HTML
// index (/). The answers come from serve.h and debug_pprof.h; this file
// routes, binds, and stops cleanly on SIGINT or SIGTERM.
#include <dirent.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <optional>
#include <regex>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "common.h"
#include "debug_pprof.h"
#include "modules.h"
#include "otlp.h"
#include "serve.h"

namespace gometrics::cli {

namespace {

struct Endpoint {
    std::string host;
    int port = 0;
};

// "HOST:PORT", "[V6]:PORT" or ":PORT" (all interfaces); port 0 picks a free one.
Endpoint parse_listen(const std::string& s) {
    const size_t colon = s.rfind(':');
    const auto bad = [&] { return Failure(kExitUsage, fmt::format("--listen {}: expected HOST:PORT", s)); };
    if (colon == std::string::npos) throw bad();
    Endpoint e;
    e.host = s.substr(0, colon);
    if (e.host.size() >= 2 && e.host.front() == '[' && e.host.back() == ']') e.host = e.host.substr(1, e.host.size() - 2);
    if (e.host.empty()) e.host = "0.0.0.0";
    const std::string port = s.substr(colon + 1);
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), e.port);
    if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || e.port < 0 || e.port > 65535)
        throw bad();
    return e;
}

std::string json_error(const std::string& message) {
    return nlohmann::ordered_json{{"error", message}}.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) +
           "\n";
}

// Sets the response, gzipped when the client accepts gzip. We compress
// ourselves and hand httplib a sized content provider, which it sends as is:
// left to itself, Debian's httplib answers "Accept-Encoding: br" (any
// browser) with brotli at quality 11, seconds of CPU for a page of 100
// processes, and does not compress application/openmetrics-text at all.
void reply(const httplib::Request& req, httplib::Response& res, std::string body, std::string_view content_type) {
    res.set_header("Vary", "Accept-Encoding");
    if (serve::accepts_gzip(req.get_header_value("Accept-Encoding"))) {
        if (auto packed = serve::gzip(body)) {
            body = std::move(*packed);
            res.set_header("Content-Encoding", "gzip");
        }
    }
    auto shared = std::make_shared<const std::string>(std::move(body));
    res.set_content_provider(shared->size(), std::string(content_type),
                             [shared](size_t offset, size_t length, httplib::DataSink& sink) {
                                 return sink.write(shared->data() + offset, length);
                             });
}

void send(httplib::Response& res, const debug_pprof::Reply& r) {
    res.status = r.status;
    res.set_header("X-Content-Type-Options", "nosniff");
    if (!r.content_disposition.empty()) res.set_header("Content-Disposition", r.content_disposition);
    if (r.go_pprof_error) res.set_header("X-Go-Pprof", "1");
    res.set_content(r.body, r.content_type);
}

// The waits of delta profiles, cut short when serve stops: otherwise a
// seconds=50 request would hold up the SIGTERM for as long.
class Waits {
public:
    bool sleep(std::chrono::seconds d) {
        std::unique_lock lock(mu_);
        return !cv_.wait_for(lock, d, [&] { return stopping_; });
    }
    void stop() {
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
        }
        cv_.notify_all();
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
};

void log_line(const std::string& line) { eprint("gometrics-cli serve: {}", line); }

// httplib bounds each read of a request, not the request: a client that
// sent a header line every few seconds held a worker for good, a dozen of
// them every worker, and a stop waited for them. serve answers one request
// per connection, and this watchdog shuts down each connection whose
// request has not arrived within kHeadSeconds of its first sighting, and
// every connection once serve stops. Connections are found in
// /proc/self/fd (httplib says nothing at accept): the sockets whose local
// port is serve's, told apart by inode.
class Connections {
public:
    static constexpr auto kHeadSeconds = std::chrono::seconds(5);

    void listen_on(int port) { port_.store(port); }

    // From the pre-routing handler: this peer's request arrived whole.
    void request_read(const std::string& addr, int port) {
        std::lock_guard lock(mu_);
        served_.insert({addr, port});
    }

    // Shuts down the connections whose request is late, or all of them.
    void sweep(bool all) {
        std::lock_guard lock(mu_);
        const auto now = std::chrono::steady_clock::now();
        std::map<ino_t, Seen> still;
        std::set<Peer> peers;
        DIR* d = opendir("/proc/self/fd");
        if (!d) return;
        while (const dirent* e = readdir(d)) {
            const int fd = std::atoi(e->d_name);
            if (fd <= 2 || fd == dirfd(d)) continue;
            struct stat st;
            const auto peer = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) ? connection(fd) : std::nullopt;
            if (!peer) continue;
            auto it = seen_.find(st.st_ino);
            Seen s = it != seen_.end() ? it->second : Seen{now, *peer};
            const bool served = served_.count(*peer) != 0;
            if (all || (!served && now - s.first > kHeadSeconds)) {
                shutdown(fd, SHUT_RDWR);  // the worker's read ends, and it closes the socket
                continue;
            }
            still.emplace(st.st_ino, s);
            peers.insert(*peer);
        }
        closedir(d);
        seen_ = std::move(still);
        std::erase_if(served_, [&](const Peer& p) { return !peers.count(p); });
    }

private:
    using Peer = std::pair<std::string, int>;
    struct Seen {
        std::chrono::steady_clock::time_point first;
        Peer peer;
    };

    // The peer of an accepted TCP connection on serve's port; none for the
    // listening socket and every other descriptor.
    std::optional<Peer> connection(int fd) const {
        int listening = 0;
        socklen_t len = sizeof listening;
        sockaddr_storage local{}, remote{};
        socklen_t local_len = sizeof local, remote_len = sizeof remote;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening ||
            getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
            getpeername(fd, reinterpret_cast<sockaddr*>(&remote), &remote_len) != 0)
            return std::nullopt;
        char host[NI_MAXHOST], local_port[NI_MAXSERV], remote_port[NI_MAXSERV];
        if (getnameinfo(reinterpret_cast<sockaddr*>(&local), local_len, nullptr, 0, local_port, sizeof local_port,
                        NI_NUMERICSERV) != 0 ||
            std::atoi(local_port) != port_.load() ||
            getnameinfo(reinterpret_cast<sockaddr*>(&remote), remote_len, host, sizeof host, remote_port,
                        sizeof remote_port, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
            return std::nullopt;
        return Peer{host, std::atoi(remote_port)};
    }

    std::atomic<int> port_{-1};
    std::mutex mu_;
    std::map<ino_t, Seen> seen_;
    std::set<Peer> served_;
};

// Server threads for ordinary requests, as httplib's default pool, plus
// one per delta profile allowed to wait at once.
constexpr int kThreads = 8;
constexpr int kMaxWaitingDeltas = 4;

int run(const ServeArgs& args) {
    const Endpoint at = parse_listen(args.listen);
    // metric_name() would reject every name built on a bad namespace.
    if (!std::regex_match(args.ns, std::regex("([a-zA-Z_:][a-zA-Z0-9_:]*)?")))
        throw Failure(kExitUsage, fmt::format("--namespace {}: not a Prometheus name ([a-zA-Z_:][a-zA-Z0-9_:]*)", args.ns));
    std::optional<otlp::Config> otlp_config;
    if (args.otlp) {
        auto c = otlp::configure(args.otlp_url.empty() ? std::nullopt : std::optional(args.otlp_url),
                                 args.otlp_interval_s, [](const char* n) { return std::getenv(n); });
        if (!c) throw Failure(kExitUsage, c.error().message);
        otlp_config = std::move(*c);
    } else if (args.otlp_interval_s) {
        throw Failure(kExitUsage, "--otlp-interval needs --otlp");
    }
    serve::Collector collector({.ns = args.ns, .pids = args.pids, .fresh_timeout_ms = args.fresh_timeout_ms},
                               log_line);
    if (!args.pids.empty()) {
        const serve::Collection now = collector.collect();
        for (int pid : args.pids)
            if (std::none_of(now.processes.begin(), now.processes.end(),
                             [&](const serve::Process& p) { return p.snapshot.pid == pid; }))
                log_line(fmt::format("process {} is not readable now; it is exported once it is", pid));
    }

    // SIGINT and SIGTERM stop the server from a thread of ours: Server::stop()
    // is not async-signal-safe, so no handler calls it. Blocked before the
    // server's threads start, so they inherit the mask.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    Waits waits;
    debug_pprof::Handler pprof_handler({.pids = args.pids,
                                        .fresh_timeout_ms = args.fresh_timeout_ms,
                                        .write_timeout_s = args.write_timeout_s,
                                        .symbolize = true,
                                        .max_waiting = kMaxWaitingDeltas},
                                       [&waits](std::chrono::seconds d) { return waits.sleep(d); });

    httplib::Server server;
    // Delta profiles each hold a thread for their wait: enough threads that
    // kMaxWaitingDeltas of them still leave /metrics its usual pool.
    server.new_task_queue = [] { return new httplib::ThreadPool(kThreads + kMaxWaitingDeltas); };
    Connections connections;
    server.set_keep_alive_max_count(1);  // a request per connection: the watchdog's deadline is the connection's
    server.set_payload_max_length(64 * 1024);  // every endpoint is a GET: a body is refused (413), not read
    server.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response&) {
        connections.request_read(req.remote_addr, req.remote_port);
        // A Range header is ignored (RFC 9110 allows it): httplib 0.11 sent
        // a sized content provider's range unchecked, past the page into
        // serve's heap. The request object is httplib's own, not const.
        const_cast<httplib::Request&>(req).ranges.clear();
        return httplib::Server::HandlerResponse::Unhandled;
    });
    server.Get("/metrics", [&](const httplib::Request& req, httplib::Response& res) {
        const bool om = prom::accepts_openmetrics(req.get_header_value("Accept"));
        reply(req, res, collector.metrics_page(om), om ? prom::kOpenMetricsContentType : prom::kTextContentType);
    });
    server.Get("/api/v1/processes", [&](const httplib::Request& req, httplib::Response& res) {
        reply(req, res, collector.processes_json(), "application/json");
    });
    server.Get(R"(/api/v1/processes/(\d{1,9}))", [&](const httplib::Request& req, httplib::Response& res) {
        const int pid = std::stoi(req.matches[1].str());
        const auto doc = collector.process_json(pid);
        if (!doc) {
            res.status = 404;
            res.set_content(json_error(fmt::format("no live instrumented process {} is exported here", pid)),
                            "application/json");
        } else if (!*doc) {
            res.status = 500;
            res.set_content(json_error(doc->error().message), "application/json");
        } else {
            reply(req, res, **doc, "application/json");
        }
    });
    server.Get("/debug/pprof", [](const httplib::Request&, httplib::Response& res) {
        res.set_redirect("/debug/pprof/", 301);
    });
    server.Get("/debug/pprof/", [&](const httplib::Request& req, httplib::Response& res) {
        send(res, pprof_handler.index(req.params));
    });
    server.Get(R"(/debug/pprof/([^/]+))", [&](const httplib::Request& req, httplib::Response& res) {
        send(res, pprof_handler.profile(req.matches[1].str(), req.params));
    });
    server.Get("/", [&](const httplib::Request& req, httplib::Response& res) {
        reply(req, res, collector.index_html(), "text/html; charset=utf-8");
    });
    server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return;  // a handler's own error document
        if (req.path.starts_with("/api/"))
            res.set_content(json_error(fmt::format("no such endpoint: {}", req.path)), "application/json");
        else
            res.set_content(fmt::format("{} {}\n", res.status, res.status == 404 ? "not found" : "error"),
                            "text/plain; charset=utf-8");
    });

    // SO_REUSEADDR alone: httplib's default adds SO_REUSEPORT, with which a
    // second serve on a port in use binds too and takes half its scrapes.
    server.set_socket_options([](socket_t sock) {
        const int one = 1;
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    });
    errno = 0;  // a host that does not resolve sets none
    const int port = at.port == 0 ? server.bind_to_any_port(at.host) : (server.bind_to_port(at.host, at.port) ? at.port : -1);
    if (port < 0)
        throw Failure(kExitError, fmt::format("cannot listen on {}: {}", args.listen,
                                              errno ? std::strerror(errno) : "no such local address"));
    connections.listen_on(port);
    const bool v6 = at.host.find(':') != std::string::npos;
    // Tests and scripts read this line to learn the port of --listen HOST:0.
    fmt::print("listening on http://{}{}{}:{}/metrics\n", v6 ? "[" : "", at.host, v6 ? "]" : "", port);
    std::fflush(stdout);

    // Pushes on its own thread from here on; stopped before the server ends.
    std::optional<otlp::Exporter> exporter;
    if (otlp_config) {
        log_line(fmt::format("pushing OTLP metrics to {} every {} s", otlp_config->url,
                             std::chrono::duration<double>(otlp_config->interval).count()));
        exporter.emplace(*otlp_config, collector, log_line);
        const std::string prefix = args.ns.empty() ? "" : args.ns + "_";
        collector.set_extra_families([&exporter, prefix] {
            return std::vector<prom::Family>{
                serve::scalar_family(prefix + "serve_otlp_exports_total",
                                     "OTLP pushes the collector accepted since gometrics-cli serve started.",
                                     prom::Type::Counter, double(exporter->exports())),
                serve::scalar_family(prefix + "serve_otlp_export_failures_total",
                                     "OTLP pushes that failed (retries included) since gometrics-cli serve started.",
                                     prom::Type::Counter, double(exporter->failures()))};
        });
    }

    std::atomic<bool> listen_returned{false};
    std::thread watchdog([&] {
        while (!listen_returned.load()) {
            connections.sweep(false);
            if (!waits.sleep(std::chrono::seconds(1))) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    });
    std::thread stopper([&] {
        int sig = 0;
        sigwait(&stop_signals, &sig);
        // stop() does nothing to a server not yet running: a signal that
        // arrives before listen_after_bind() gets going must wait for it.
        while (!listen_returned && !server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        waits.stop();
        server.stop();
        // The workers still reading a request end once their sockets do.
        while (!listen_returned.load()) {
            connections.sweep(true);
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    });
    const bool ok = server.listen_after_bind();
    listen_returned = true;
    waits.stop();  // the watchdog's sleep
    watchdog.join();
    if (exporter) exporter->stop();
    // Wakes the stopper if listen_after_bind returned on its own (an error);
    // harmless when the stopper already ended.
    pthread_kill(stopper.native_handle(), SIGTERM);
    stopper.join();
    return ok ? kExitOk : kExitError;
}

}  // namespace

}  // namespace gometrics::cli

extern "C" {

const char gometrics_cli_module_version[] = GOMETRICS_VERSION;

int gometrics_cli_serve_run(const gometrics::cli::ServeArgs& args, gometrics::cli::ModuleFailure& failure) {
    return gometrics::cli::run_in_module(failure, [&] { return gometrics::cli::run(args); });
}

}
