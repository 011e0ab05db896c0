// The GOMETRICS_* table; see config.h.
#include "config.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "buffer.h"
#include "layout.h"
#include "log.h"

namespace gometrics::agent {

namespace {

// A decimal number in [lo, hi], nothing after it.
bool number(const char* text, uint64_t lo, uint64_t hi, uint64_t& out) noexcept {
    if (*text < '0' || *text > '9') return false;  // strtoull would take a sign or spaces
    char* end;
    errno = 0;
    const unsigned long long n = std::strtoull(text, &end, 10);
    if (*end || errno || n < lo || n > hi) return false;
    out = n;
    return true;
}

// Paths are copied: programs that rewrite their process title (redis-server,
// nginx, postgres) move environ and overwrite the original strings.
GOMETRICS_BUFFER constinit char g_report_path[4096] = {};
GOMETRICS_BUFFER constinit char g_profile_report_path[4096] = {};
GOMETRICS_BUFFER constinit char g_trace_path[4096] = {};

bool path(const char* text, char (&buf)[4096], const char*& out) noexcept {
    const size_t n = std::strlen(text);
    if (n >= sizeof buf) return false;
    if (n) std::memcpy(buf, text, n + 1);  // unset (the default), its page stays untouched
    out = n ? buf : nullptr;
    return true;
}

constexpr EnvVar kTable[] = {
    {"GOMETRICS_INTERVAL_MS", "1000", "10 to 3600000",
     "How often, in milliseconds, the publisher refreshes the segment. Readers also ask for a fresh snapshot on every "
     "read and get one within milliseconds, so the interval only matters to readers that do not ask, and to trace "
     "lines.",
     [](const char* t, Config& c) noexcept {
         uint64_t n;
         if (!number(t, 10, 3600 * 1000, n)) return false;
         c.interval_ms = static_cast<uint32_t>(n);
         return true;
     }},
    {"GOMETRICS_PUBLISHER", "auto", "auto or thread; lazy is the old name of auto",
     "`auto`: no thread of the agent while the program has none of its own; the publisher thread starts after the "
     "program's first `pthread_create`, and until then the program's own thread takes a snapshot when a reader asks. "
     "`thread`: the publisher thread starts with the program, so an idle single-threaded program's /proc figures "
     "stay fresh too. Trace lines need the thread: `GOMETRICS_TRACE` implies `thread`.",
     [](const char* t, Config& c) noexcept {
         const bool thread = std::strcmp(t, "thread") == 0;
         if (!thread && std::strcmp(t, "auto") != 0 && std::strcmp(t, "lazy") != 0) return false;
         c.eager_publisher = thread;
         return true;
     }},
    {"GOMETRICS_REPORT", "", "a file path; `%p` becomes the pid",
     "Write the final snapshot, in `gometrics-cli dump --format json`'s format, to this file at exit.",
     [](const char* t, Config& c) noexcept { return path(t, g_report_path, c.report_path); }},
    {"GOMETRICS_TRACE", "0", "0, 1, or a file path (`%p` becomes the pid)",
     "`1`: one gctrace-like line per interval on stderr; `0`: none; any other value: append the lines to that file "
     "(forked children append to their parent's file, exec'd programs open it anew). A file that cannot be opened "
     "switches tracing off with one line on stderr.",
     [](const char* t, Config& c) noexcept {
         const bool off = std::strcmp(t, "0") == 0;
         return path(off ? "" : t, g_trace_path, c.trace);
     }},
    {"GOMETRICS_PROFILE_RATE", "524288", "0 to 1099511627776",
     "Mean bytes allocated between sampled allocations (drawn at random, as Go's `MemProfileRate`); 0 turns heap "
     "profiling off.",
     [](const char* t, Config& c) noexcept { return number(t, 0, uint64_t{1} << 40, c.profile_rate); }},
    {"GOMETRICS_MUTEX_PROFILE_FRACTION", "8", "0 to 1073741824",
     "One contended lock acquisition in this many, on average (drawn at random), is sampled with its stack; 0 turns "
     "mutex profiling off.",
     [](const char* t, Config& c) noexcept { return number(t, 0, uint64_t{1} << 30, c.mutex_fraction); }},
    {"GOMETRICS_PROFILE_MAX_STACKS", "1024", "0 to 1048576",
     "Distinct stacks kept, heap and mutex together, in memory the agent maps and in the segment; samples beyond "
     "are counted as dropped. 0 turns both profiles off.",
     [](const char* t, Config& c) noexcept {
         uint64_t n;
         if (!number(t, 0, layout::kMaxProfileStacks, n)) return false;
         c.profile_max_stacks = static_cast<uint32_t>(n);
         return true;
     }},
    {"GOMETRICS_PROFILE_REPORT", "", "a file path; `%p` becomes the pid",
     "At exit, write the sampled stacks and the executable mappings as JSON to this file, for "
     "`gometrics-cli profile --from-report`.",
     [](const char* t, Config& c) noexcept { return path(t, g_profile_report_path, c.profile_report_path); }},
    {"GOMETRICS_ALLOCATOR", "glibc", "jemalloc or glibc",
     "`jemalloc`: serve the program's malloc family from Debian's `libjemalloc.so.2`, loaded privately, when the "
     "program runs on glibc's malloc and has no thread yet. `glibc`: leave the program's allocator alone.",
     [](const char* t, Config& c) noexcept {
         c.jemalloc = std::strcmp(t, "jemalloc") == 0;
         return c.jemalloc || std::strcmp(t, "glibc") == 0;
     }},
};

}  // namespace

std::span<const EnvVar> environment_table() noexcept { return kTable; }

void parse_config(Config& out, const char* (*lookup)(const char* name)) noexcept {
    for (const EnvVar& v : kTable) {
        char name[64] = {};
        std::memcpy(name, v.name.data(), std::min(v.name.size(), sizeof name - 1));
        const char* text = lookup(name);
        if (text && *text && v.parse(text, out)) continue;
        if (text && *text) log::line({"ignoring ", name, "=", text, " (", v.allowed, ")"});
        char fallback[64] = {};
        std::memcpy(fallback, v.default_text.data(), std::min(v.default_text.size(), sizeof fallback - 1));
        (void)v.parse(fallback, out);
    }
}

}  // namespace gometrics::agent
