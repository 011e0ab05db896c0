// What `gometrics-cli serve` answers, without the HTTP; see serve.h.
#include "serve.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <fstream>
#include <limits>

#include <fmt/format.h>

#include "emitter.h"
#include "gzip.h"
#include "units.h"

namespace gometrics::cli::serve {

namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

std::string prefixed(std::string_view ns, std::string_view name) {
    return ns.empty() ? std::string(name) : fmt::format("{}_{}", ns, name);
}

// A process opened for this request, waiting for its fresh snapshot.
struct Opened {
    const ProcessInfo* info;
    Reader reader;
    FreshRequest fresh;
};

}  // namespace

Collector::Collector(Options options, Log log) : options_(std::move(options)), log_(std::move(log)) {}

bool Collector::admitted(int pid) const {
    return options_.pids.empty() || std::find(options_.pids.begin(), options_.pids.end(), pid) != options_.pids.end();
}

// Called with mu_ held.
void Collector::log_failure(int pid, const std::string& message) {
    auto [it, fresh] = logged_.try_emplace(pid, message);
    if (!fresh) return;
    log_(fmt::format("process {} left out: {}", pid, message));
}

Collection Collector::collect(std::optional<int> only) { return collect_from(list_processes(), only); }

Collection Collector::collect_from(const std::vector<ProcessInfo>& listed, std::optional<int> only) {
    std::lock_guard lock(mu_);
    Collection out;
    const auto fail = [&](int pid, const std::string& message) {
        ++out.errors;
        out.failed.push_back(pid);
        log_failure(pid, message);
    };

    // Phase 1: open every process and ask each for a snapshot.
    std::vector<Opened> opened;
    for (const ProcessInfo& p : listed) {
        if (!admitted(p.pid) || (only && p.pid != *only) || !p.alive) continue;
        if (!p.readable) {
            // Another user's segment is none of our business; one we may read
            // but could not parse is corrupt.
            if (access(p.segment.c_str(), R_OK) == 0) fail(p.pid, "segment " + p.segment + " could not be read");
            continue;
        }
        // The listing has just checked that the process is alive and maps
        // this segment; Reader::open(pid) would check again, and reading
        // /proc/PID/maps twice per process is most of a scrape's cost. A
        // process that exits now gives its last snapshot to this one scrape.
        auto r = Reader::open_path(p.segment, p.pid);
        if (!r) {
            fail(p.pid, r.error().message);
            continue;
        }
        const FreshRequest fresh = options_.fresh_timeout_ms > 0 ? r->RequestFresh() : FreshRequest{};
        opened.push_back(Opened{&p, std::move(*r), fresh});
    }

    // Phase 2: one deadline for every answer, then one coherent read each.
    const auto deadline = Clock::now() + std::chrono::milliseconds(options_.fresh_timeout_ms);
    for (Opened& o : opened) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        o.reader.AwaitFresh(o.fresh, static_cast<int>(std::max<int64_t>(left, 0)));
        auto snap = o.reader.ReadAll({.fresh_timeout_ms = 0});
        if (!snap) {
            fail(o.info->pid, snap.error().message);
            continue;
        }
        Process proc;
        proc.snapshot.pid = o.info->pid;
        proc.snapshot.comm = o.info->command;
        proc.snapshot.descs = o.reader.All();
        proc.snapshot.values = std::move(snap->values);
        proc.start_time_ns = o.reader.start_time_ns();
        proc.time_ns = snap->time_ns;
        proc.proc_start_ticks = o.reader.proc_start_ticks();
        out.processes.push_back(std::move(proc));
    }

    // A process that reads again, or has gone, will be logged anew if it fails later.
    for (auto it = logged_.begin(); it != logged_.end();) {
        const bool still_failing = std::find(out.failed.begin(), out.failed.end(), it->first) != out.failed.end();
        const bool in_scope = !only || it->first == *only;
        it = in_scope && !still_failing ? logged_.erase(it) : std::next(it);
    }
    return out;
}

std::string Collector::metrics_page(bool openmetrics) {
    const auto start = Clock::now();
    Collection c = collect();
    std::vector<prom::Family> families;
    for (const Process& p : c.processes) prom::add_process(families, p.snapshot, options_.ns);
    for (const Process& p : c.processes)
        prom::add_process_standard(families, p.snapshot, start_time_seconds(p.proc_start_ticks));
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

    uint64_t read_errors = 0, scrapes = 0;
    {
        std::lock_guard lock(mu_);
        read_errors = read_errors_ += static_cast<uint64_t>(c.errors);
        scrapes = ++scrapes_;
    }
    for (auto& f : own_families(options_.ns, seconds, c.processes.size(), read_errors, scrapes))
        families.push_back(std::move(f));
    if (extra_)
        for (auto& f : extra_()) families.push_back(std::move(f));

    std::string out;
    if (openmetrics)
        prom::render_openmetrics(out, families);
    else
        prom::render_text(out, families);
    return out;
}

std::string Collector::processes_json() {
    json doc = json::array();
    for (const Process& p : collect().processes) doc.push_back(process_document(p));
    return dump_json(doc);
}

std::optional<Result<std::string>> Collector::process_json(int pid) {
    Collection c = collect(pid);
    if (!c.processes.empty()) return Result<std::string>(dump_json(process_document(c.processes.front())));
    if (c.errors == 0) return std::nullopt;
    std::lock_guard lock(mu_);
    const auto it = logged_.find(pid);
    return Result<std::string>(Error{it != logged_.end() ? it->second : "read failed"});
}

void Collector::set_extra_families(std::function<std::vector<prom::Family>()> extra) { extra_ = std::move(extra); }

std::vector<Listed> Collector::live_listing() {
    std::vector<Listed> out;
    for (const ProcessInfo& p : list_processes())
        if (p.alive && p.readable && admitted(p.pid)) out.push_back({p.pid, p.command, p.start_time_ns});
    return out;
}

std::string Collector::index_html() {
    std::string rows;
    for (const Listed& p : live_listing())
        rows += fmt::format(
            "<tr><td>{0}</td><td>{1}</td><td>{2}</td>"
            "<td><a href=\"/api/v1/processes/{0}\">/api/v1/processes/{0}</a></td></tr>\n",
            p.pid, html_escape(p.comm), human_uptime(uptime_seconds(p.start_time_ns)));
    if (rows.empty()) rows = "<tr><td colspan=\"4\">no live instrumented process</td></tr>\n";
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    return fmt::format(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>gometrics on {0}</title>\n"
        "<style>body{{font-family:sans-serif}} td,th{{padding:2px 12px;text-align:left}}</style></head>\n"
        "<body><h1>gometrics on {0}</h1>\n"
        "<p><a href=\"/metrics\">/metrics</a> (Prometheus) &middot; "
        "<a href=\"/api/v1/processes\">/api/v1/processes</a> (JSON)</p>\n"
        "<table>\n<tr><th>PID</th><th>COMMAND</th><th>UPTIME</th><th>METRICS</th></tr>\n{1}</table>\n"
        "</body></html>\n",
        html_escape(host), rows);
}

std::optional<double> start_time_seconds(uint64_t proc_start_ticks) {
    // Fixed while the machine runs: read once.
    static const std::optional<uint64_t> boot_time = []() -> std::optional<uint64_t> {
        std::ifstream stat("/proc/stat");
        std::string key;
        uint64_t value = 0;
        while (stat >> key) {
            if (key == "btime" && stat >> value) return value;
            stat.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
        }
        return std::nullopt;
    }();
    static const long ticks_per_second = sysconf(_SC_CLK_TCK);
    if (!boot_time || proc_start_ticks == 0 || ticks_per_second <= 0) return std::nullopt;
    return double(*boot_time) + double(proc_start_ticks) / double(ticks_per_second);
}

json process_document(const Process& p) {
    json metrics = json::array();
    const auto& s = p.snapshot;
    for (size_t i = 0; i < std::min(s.descs.size(), s.values.size()); ++i)
        metrics.push_back({{"name", s.descs[i].name},
                           {"kind", to_string(s.descs[i].kind)},
                           {"cumulative", s.descs[i].cumulative},
                           {"value", value_to_json(s.values[i])}});
    return json{{"pid", s.pid},
                {"comm", s.comm},
                {"start_time_ns", p.start_time_ns},
                {"uptime_seconds", uptime_seconds(p.start_time_ns)},
                {"time_ns", p.time_ns},
                {"metrics", std::move(metrics)}};
}

std::string html_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

bool accepts_gzip(std::string_view header) {
    const auto trim = [](std::string_view s) {
        while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
        while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
        return s;
    };
    const auto lower = [](std::string_view s) {
        std::string out(s);
        for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return out;
    };
    while (!header.empty()) {
        const size_t comma = std::min(header.find(','), header.size());
        std::string_view coding = header.substr(0, comma);
        header.remove_prefix(std::min(comma + 1, header.size()));
        const size_t semi = std::min(coding.find(';'), coding.size());
        const std::string name = lower(trim(coding.substr(0, semi)));
        if (name != "gzip" && name != "x-gzip" && name != "*") continue;
        double q = 1;
        const std::string_view params = trim(coding.substr(std::min(semi + 1, coding.size())));
        if (params.starts_with("q=") || params.starts_with("Q=")) {
            const std::string_view v = trim(params.substr(2));
            if (std::from_chars(v.data(), v.data() + v.size(), q).ec != std::errc{}) q = 0;
        }
        if (q > 0) return true;
    }
    return false;
}

// The fastest level: on the page of 100 processes (835 KiB) it is 3x faster
// than the default level for 5% more bytes (36 KiB against 34.6 KiB).
std::optional<std::string> gzip(std::string_view body) { return gzip_compress(body, kGzipFastestLevel); }

prom::Family scalar_family(std::string name, std::string help, prom::Type type, double value) {
    prom::Family f{.name = std::move(name), .help = std::move(help), .type = type, .series = {}};
    f.series.push_back(prom::Series{.labels = {}, .value = value, .histogram = {}});
    return f;
}

std::vector<prom::Family> own_families(std::string_view ns, double scrape_seconds, size_t processes,
                                       uint64_t read_errors, uint64_t scrapes) {
    std::vector<prom::Family> out;
    out.push_back(scalar_family(prefixed(ns, "serve_processes"),
                                "Instrumented processes exported by this scrape of gometrics-cli serve.",
                                prom::Type::Gauge, double(processes)));
    out.push_back(scalar_family(prefixed(ns, "serve_read_errors_total"),
                                "Processes left out of a scrape because their segment vanished or was corrupt, since "
                                "gometrics-cli serve started.",
                                prom::Type::Counter, double(read_errors)));
    out.push_back(scalar_family(prefixed(ns, "serve_scrape_duration_seconds"),
                                "Time this scrape took to read and convert every process's metrics.",
                                prom::Type::Gauge, scrape_seconds));
    out.push_back(scalar_family(prefixed(ns, "serve_scrapes_total"),
                                "Scrapes of /metrics served by gometrics-cli serve, this one included.",
                                prom::Type::Counter, double(scrapes)));
    return out;
}

}  // namespace gometrics::cli::serve
