// Trace lines; see trace.h. Runs on the publisher thread (or the exit path),
// which is the agent's own, so fmt's formatting is never counted; it formats
// into a stack buffer and writes the line with one write(2), so lines of
// several processes appending to one file never interleave.
#include "trace.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "agent.h"
#include "buffer.h"
#include "kept_file.h"
#include "log.h"
#include "proc.h"
#include "text_writer.h"

namespace gometrics::agent {

namespace {

// Looked up by name in the published table, so a line shows whatever the
// families of this build publish and "-" for the rest.
constexpr std::string_view kLive = "/gc/heap/live:bytes";
constexpr std::string_view kPeak = "/gc/heap/live-peak:bytes";
constexpr std::string_view kAllocBytes = "/gc/heap/allocs:bytes";
constexpr std::string_view kAllocObjects = "/gc/heap/allocs:objects";
constexpr std::string_view kThreads = "/sched/threads/total:threads";
constexpr std::string_view kMutexWait = "/sync/mutex/wait/total:seconds";
constexpr std::string_view kRss = "/process/memory/rss:bytes";

struct Baseline {
    bool set = false;
    uint64_t time_ns = 0;
    double alloc_bytes = NAN, alloc_objects = NAN, mutex_wait = NAN, cpu_seconds = NAN;
};

// Written by the constructor, then only by the single writer.
constinit int g_fd = -1;             // STDERR_FILENO, g_file's number, or -1: no trace
constinit sys::KeptFile g_file;      // GOMETRICS_TRACE=FILE
constinit Baseline g_base{};
constinit std::atomic<bool> g_said_confined{false};

double cpu_seconds() {
    rusage ru;
    if (sys::confined() || getrusage(RUSAGE_SELF, &ru) != 0) return NAN;  // its filter may forbid getrusage
    return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

// The scalar value of the metric called name, NaN when it is not published.
double lookup(const TraceView& v, std::string_view name) {
    for (size_t i = 0; i < v.metrics.size(); ++i) {
        const collect::Metric& m = *v.metrics[i];
        if (m.name != name) continue;
        const uint64_t w = v.words[v.word_offset[i]];
        if (m.kind == layout::kKindUint64) return double(w);
        if (m.kind == layout::kKindFloat64) return std::bit_cast<double>(w);
        return NAN;
    }
    return NAN;
}

// Three significant digits at most, trailing zeros dropped: "12.3", "0.5", "1000".
TextWriter& number(TextWriter& out, double v) {
    const double a = std::fabs(v);
    const int decimals = a >= 100 ? 0 : a >= 10 ? 1 : 2;
    char tmp[32];
    auto r = fmt::format_to_n(tmp, sizeof tmp - 1, "{:.{}f}", v, decimals);
    std::string_view s(tmp, static_cast<size_t>(r.out - tmp));
    if (s.find('.') != std::string_view::npos) {
        while (s.back() == '0') s.remove_suffix(1);
        if (s.back() == '.') s.remove_suffix(1);
    }
    return out.text(s);
}

TextWriter& bytes(TextWriter& out, double v) {
    if (std::isnan(v)) return out.text("-");
    static constexpr std::string_view kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    while (std::fabs(v) >= 1024 && u + 1 < std::size(kUnits)) v /= 1024, ++u;
    return number(out, v).text(kUnits[u]);
}

TextWriter& seconds(TextWriter& out, double v) {
    if (std::isnan(v)) return out.text("-");
    const double a = std::fabs(v);
    if (a == 0) return out.text("0s");
    if (a < 1e-6) return number(out, v * 1e9).text("ns");
    if (a < 1e-3) return number(out, v * 1e6).text("us");
    if (a < 1) return number(out, v * 1e3).text("ms");
    return number(out, v).text("s");
}

TextWriter& count(TextWriter& out, double v) {
    if (std::isnan(v)) return out.text("-");
    if (std::fabs(v) >= 1e9) return number(out, v / 1e9).text("G");
    if (std::fabs(v) >= 1e6) return number(out, v / 1e6).text("M");
    if (std::fabs(v) >= 1e4) return number(out, v / 1e3).text("k");
    return number(out, v);
}

// Appends "/s" to a rate just written, unless it was "-" (unknown).
TextWriter& per_second(TextWriter& out) { return out.back() == '-' ? out : out.text("/s"); }

double rate(double now, double before, double dt) {
    if (std::isnan(now) || std::isnan(before) || dt <= 0) return NAN;
    return now >= before ? (now - before) / dt : 0;
}

void write_all(const char* p, size_t n) {
    // A file of ours is written only while its number still names it: a
    // program that closed it may have opened a file of its own there.
    const int fd = g_fd == STDERR_FILENO ? sys::borrow_program_fd(g_fd) : g_file.fd();
    if (fd < 0) {
        if (g_fd == STDERR_FILENO) return;
        if (g_file.lost_now()) log::line({"the GOMETRICS_TRACE file was closed by the program: no more trace lines"});
        // Confined, the number can no longer be checked (see sys::confined).
        if (sys::confined()) log::once(g_said_confined, {"the program confined itself (seccomp): no more trace lines"});
        return;
    }
    const ssize_t w = ::write(fd, p, n);  // one call: lines stay whole in a shared file
    (void)w;
    if (g_fd == STDERR_FILENO) sys::release_program_fd(fd, g_fd);
}

}  // namespace

bool trace_enabled() noexcept { return g_fd >= 0; }

void trace_configure() noexcept {
    const char* v = config().trace;
    if (!v) return;
    if (std::strcmp(v, "1") == 0) {
        g_fd = STDERR_FILENO;
        return;
    }
    // "%p" -> pid, into a stack buffer: the constructor does not allocate.
    GOMETRICS_BUFFER static char path[4096];  // static: the constructor may run on a small stack
    size_t n = 0;
    for (const char* p = v; *p && n < sizeof path - 24; ++p) {
        if (p[0] == '%' && p[1] == 'p') {
            char digits[24];
            for (char c : log::dec(getpid(), digits)) path[n++] = c;
            ++p;
        } else {
            path[n++] = *p;
        }
    }
    path[n] = '\0';
    if (const int err = g_file.open(AT_FDCWD, path, O_WRONLY | O_CREAT | O_APPEND, 0644)) {
        log::line({"cannot open GOMETRICS_TRACE file ", path, " (", strerror(err), "): no trace lines"});
        return;
    }
    g_fd = g_file.fd();
}

void trace_restart() noexcept { g_base.set = false; }

void trace_snapshot(const TraceView& view, uint32_t interval_ms, bool final) noexcept {
    if (g_fd < 0) return;
    const uint64_t interval_ns = uint64_t(interval_ms) * 1000000ULL;
    // A tenth of an interval of slack: the publisher wakes once per interval
    // after computing, so the gap is a little longer, never much shorter.
    if (g_base.set && !final && view.time_ns + interval_ns / 10 < g_base.time_ns + interval_ns) return;

    const double alloc_bytes = lookup(view, kAllocBytes), alloc_objects = lookup(view, kAllocObjects);
    const double mutex_wait = lookup(view, kMutexWait), cpu = cpu_seconds();
    if (g_base.set || final) {
        // Rates over the time since the previous line (since start-up for the first).
        const uint64_t since = g_base.set ? g_base.time_ns : start_time_ns();
        const double dt = view.time_ns > since ? double(view.time_ns - since) * 1e-9 : 0;
        const Baseline b = g_base.set ? g_base : Baseline{true, since, 0, 0, 0, 0};
        const uint64_t start = start_time_ns();
        const double elapsed = view.time_ns > start ? double(view.time_ns - start) * 1e-9 : 0;

        char buf[512];  // every field's text is bounded: a line fits
        TextWriter out(buf, sizeof buf);
        out.format("gometrics {} @{:.3f}s{}: live ", sys::self_pid(), elapsed, final ? " exit" : "");
        bytes(out, lookup(view, kLive)).text(" peak ");
        bytes(out, lookup(view, kPeak)).text(", alloc ");
        per_second(bytes(out, rate(alloc_bytes, b.alloc_bytes, dt))).text(" ");
        per_second(count(out, rate(alloc_objects, b.alloc_objects, dt))).text(", threads ");
        count(out, lookup(view, kThreads)).text(", mutex-wait ");
        per_second(seconds(out, rate(mutex_wait, b.mutex_wait, dt))).text(", cpu ");
        const double cpu_rate = rate(cpu, b.cpu_seconds, dt);
        if (std::isnan(cpu_rate)) out.text("-");
        else number(out, cpu_rate * 100).text("%");
        out.text(", rss ");
        bytes(out, lookup(view, kRss)).text("\n");
        write_all(out.view().data(), out.view().size());
    }
    g_base = {true, view.time_ns, alloc_bytes, alloc_objects, mutex_wait, cpu};
}

}  // namespace gometrics::agent
