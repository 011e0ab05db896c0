// `watch`: a live view of one process. In a terminal, a table redrawn in
// place (ANSI home + clear, no curses); otherwise one line per interval.
// Gauges show their value, cumulative scalars their rate over the last
// interval, histograms the percentiles of the samples of the last interval
// (two snapshots with the same buckets, subtracted).
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "histstats.h"
#include "units.h"

namespace gometrics::cli {

namespace {

volatile sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

struct Options {
    std::optional<int> pid;
    double interval = 1;
    int count = 0;  // refreshes before stopping; 0 = until the process exits or Ctrl-C
    std::vector<std::string> names;
};

// One metric rendered, for the table and for a line.
struct Cell {
    std::string now;     // "1.2 MiB", "3.4 MiB/s", "p50 64 B  p90 1 KiB  p99 4 KiB"
    std::string detail;  // total of a cumulative value, samples/s of a histogram
    std::string compact; // no spaces, for lines: "1.2MiB", "3.4MiB/s", "p50:64B,p90:1KiB,p99:4KiB"
};

double scalar(const Value& v) {
    return v.kind == ValueKind::Uint64 ? double(v.u64) : v.kind == ValueKind::Float64 ? v.f64 : NAN;
}

std::string without_spaces(std::string s) {
    std::erase(s, ' ');
    return s;
}

Cell render(const Description& d, const Value& now, const Value* before, double dt) {
    const std::string_view unit = unit_of(d.name);
    if (now.kind == ValueKind::Float64Histogram) {
        if (!before || dt <= 0) return {"-", fmt::format("{} samples", human(double(total_count(now.hist)), "")), "-"};
        const auto window = subtract(now.hist, before->hist);
        if (!window) return {"buckets changed", "", "-"};
        const uint64_t n = total_count(*window);
        const std::string rate = human_rate(double(n) / dt, "samples");
        if (n == 0) return {"no samples", rate, "none"};
        const std::string p50 = human(quantile(*window, 0.5), unit), p90 = human(quantile(*window, 0.9), unit),
                          p99 = human(quantile(*window, 0.99), unit);
        return {fmt::format("p50 {}  p90 {}  p99 {}", p50, p90, p99), rate,
                without_spaces(fmt::format("p50:{},p90:{},p99:{}", p50, p90, p99))};
    }
    const double v = scalar(now);
    if (!d.cumulative) return {human(v, unit), "", without_spaces(human(v, unit))};
    const std::string total = human(v, unit);
    if (!before || dt <= 0) return {"-", total, "-"};
    const double delta = v - scalar(*before);
    const double per_second = delta > 0 ? delta / dt : 0;
    // The name carries the unit: a line says "53.8k/s" where the table says "53.8k objects/s".
    return {human_rate(per_second, unit), total, without_spaces(human(per_second, unit)) + "/s"};
}

std::string clock_text() {
    const time_t t = time(nullptr);
    tm local{};
    localtime_r(&t, &local);
    return fmt::format("{:02}:{:02}:{:02}", local.tm_hour, local.tm_min, local.tm_sec);
}

bool process_alive(int pid) { return kill(pid, 0) == 0 || errno == EPERM; }

int watch(const Options& o) {
    if (!(o.interval >= 0.05 && o.interval <= 3600)) throw Failure(kExitUsage, "--interval must be between 0.05 and 3600 seconds");
    const int pid = pick_pid(o.pid);
    Reader r = open_or_fail(pid);

    std::vector<size_t> shown;  // indexes into r.All()
    const auto& all = r.All();
    const auto index_of = [&](std::string_view name) -> std::optional<size_t> {
        for (size_t i = 0; i < all.size(); ++i)
            if (all[i].name == name) return i;
        return std::nullopt;
    };
    for (const auto& n : o.names) {
        const auto i = index_of(n);
        if (!i) throw Failure(kExitUnsupported, fmt::format("{}: not published by process {}", n, pid));
        shown.push_back(*i);
    }
    // No NAME: every metric that moves, in name order. Settings and limits
    // (Aggregation::None) stay as they were and are left out.
    if (o.names.empty())
        for (size_t i = 0; i < all.size(); ++i)
            if (all[i].aggregation != Aggregation::None) shown.push_back(i);

    const bool tty = isatty(STDOUT_FILENO);
    struct sigaction sa {};
    sa.sa_handler = on_stop;  // no SA_RESTART: the sleep returns at once
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGHUP, &sa, nullptr);

    const std::string command = [&] {
        for (const auto& p : list_processes())
            if (p.pid == pid) return printable(p.command);
        return std::string();
    }();
    size_t width = 6;
    for (size_t i : shown) width = std::max(width, all[i].name.size());

    std::optional<Snapshot> before;
    std::string ending;
    for (int frame = 1; !g_stop; ++frame) {
        auto snap = r.ReadAll({.fresh_timeout_ms = 200});
        if (!snap) throw Failure(kExitError, snap.error().message);
        const bool exited = r.exited() || !process_alive(pid);
        // Live values (Description::live) move between reads, the others between snapshots.
        const auto seconds = [&](uint64_t now, uint64_t then) { return now > then ? double(now - then) * 1e-9 : 0; };
        const double dt = before ? seconds(snap->time_ns, before->time_ns) : 0;
        const double live_dt = before ? seconds(snap->live_time_ns, before->live_time_ns) : 0;

        std::string out;
        if (tty) {
            out += "\x1b[H\x1b[2J";  // home, clear: redraw in place
            out += fmt::format("gometrics-cli watch: pid {} ({}), every {}s, {}{}\n\n", pid, command, o.interval,
                               clock_text(), exited ? "" : "  (Ctrl-C to stop)");
            out += fmt::format("{:<{}}  {:<40}  {}\n", "METRIC", width, "NOW (rates per second)", "TOTAL");
        } else {
            out += clock_text();
        }
        for (size_t i : shown) {
            const Cell c = render(all[i], snap->values[i], before ? &before->values[i] : nullptr,
                                  all[i].live ? live_dt : dt);
            if (tty)
                out += fmt::format("{:<{}}  {:<40}  {}\n", all[i].name, width, c.now, c.detail);
            else
                out += fmt::format(" {}={}", all[i].name, c.compact);
        }
        if (!tty) out += '\n';
        fmt::print("{}", out);
        std::fflush(stdout);
        before = std::move(*snap);

        if (exited) {
            // A detach writes the final snapshot as an exit does; the process runs on.
            const bool detached = r.state().attached && process_alive(pid);
            ending = fmt::format("process {} {}", pid, detached ? "was detached (the agent stopped publishing)" : "exited");
            break;
        }
        if (o.count && frame >= o.count) break;
        const double s = o.interval;
        timespec ts{static_cast<time_t>(s), static_cast<long>((s - std::floor(s)) * 1e9)};
        nanosleep(&ts, nullptr);  // EINTR on Ctrl-C
    }
    if (ending.empty()) ending = g_stop ? "stopped" : fmt::format("{} refreshes", o.count);
    fmt::print("{}gometrics-cli watch: {}\n", tty ? "\n" : "", ending);
    return kExitOk;
}

}  // namespace

void add_watch_command(CLI::App& app, int& status) {
    static Options o;
    auto* w = app.add_subcommand("watch", "Live view of a process: values, rates per second, windowed percentiles");
    w->add_option("-p,--pid", o.pid, "Process to watch (default: the only live instrumented one)")->transform(kDecimal);
    w->add_option("-i,--interval", o.interval, "Seconds between refreshes (default 1)");
    w->add_option("-n,--count", o.count, "Stop after this many refreshes (default: until the process exits)")
        ->transform(kDecimal);
    w->add_option("names", o.names, "Metric names (default: all but the settings and limits)");
    w->callback([&status] { status = watch(o); });
}

}  // namespace gometrics::cli
