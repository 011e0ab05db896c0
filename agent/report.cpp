// The exit report; see report.h. It neither allocates nor takes a lock: it
// also runs in the crash handler (crash.cpp), maybe inside a malloc that
// holds the allocator's lock. The text goes to an anonymous mapping, sized
// for the table beforehand.
#include "report.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "buffer.h"
#include "kept_file.h"
#include "log.h"
#include "text_writer.h"

namespace gometrics::agent {

namespace {

const char* kind_name(layout::Kind k) {
    switch (k) {
        case layout::kKindUint64: return "uint64";
        case layout::kKindFloat64: return "float64";
        case layout::kKindFloat64Histogram: return "float64-histogram";
        default: return "bad";
    }
}

// Upper bound of one number's text ("-1.2345678901234567e-308", quoted Inf).
constexpr size_t kNumber = 32;

size_t bound(std::span<const collect::Metric* const> metrics) {
    size_t n = 64;
    for (const collect::Metric* m : metrics) n += 160 + m->name.size() + 2 * kNumber * (m->bounds.size() + 1);
    return n;
}

void value(TextWriter& out, const collect::Metric& m, const uint64_t* w) {
    switch (m.kind) {
        case layout::kKindUint64: out.format("{}", *w); return;
        case layout::kKindFloat64: out.json_number(std::bit_cast<double>(*w)); return;
        case layout::kKindFloat64Histogram:
            out.text("{\"buckets\": [");
            for (size_t i = 0; i < m.bounds.size(); ++i) out.text(i ? ", " : "").json_number(m.bounds[i]);
            out.text("], \"counts\": [");
            for (size_t i = 0; i + 1 < m.bounds.size(); ++i) out.format("{}{}", i ? ", " : "", w[i]);
            out.text("]}");
            return;
        default: out.text("null");
    }
}

// path with "%p" as the pid; false when it does not fit.
bool expand(const char* path, char (&out)[4096]) {
    char pid[24];
    const std::string_view digits = log::dec(getpid(), pid);
    size_t n = 0;
    for (const char* p = path; *p; ++p) {
        const bool pct = p[0] == '%' && p[1] == 'p';
        const std::string_view part = pct ? digits : std::string_view(p, 1);
        if (n + part.size() >= sizeof out) return false;
        std::memcpy(out + n, part.data(), part.size());
        n += part.size();
        p += pct;
    }
    out[n] = '\0';
    return true;
}

bool write_all(int fd, const char* p, size_t n) {
    while (n) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

// The report's directory, kept from start-up: the report still lands there
// when its path no longer leads there at exit (the program chroot()ed). A
// program that drops privileges needs a directory its new user may write.
constinit sys::KeptFile g_dir;

// The last component of a path, and whether it has a directory part.
const char* base_name(const char* path) {
    const char* slash = std::strrchr(path, '/');
    return slash ? slash + 1 : path;
}

// The report file itself, created before a privilege drop (see report.h).
constinit sys::KeptFile g_given;

// Writes the whole report into g_given, if the program's drop left it.
bool write_given(const char* text, size_t n) {
    const int fd = g_given.fd();
    if (fd < 0 || ftruncate(fd, 0) != 0) return false;
    for (size_t at = 0; at < n;) {
        const ssize_t w = pwrite(fd, text + at, n - at, static_cast<off_t>(at));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        at += static_cast<size_t>(w);
    }
    return true;
}

bool write_in_dir(const char* name, const char* tmp_name, const char* text, size_t n) {
    const int dir = g_dir.fd();
    if (dir < 0) return false;
    const int fd = openat(dir, tmp_name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    bool done = write_all(fd, text, n);
    close(fd);
    done = done && renameat(dir, tmp_name, dir, name) == 0;
    if (!done) unlinkat(dir, tmp_name, 0);
    return done;
}

}  // namespace

void prepare_report(const char* path) noexcept {
    const int saved_errno = errno;
    GOMETRICS_BUFFER static char dir[4096];
    if (expand(path, dir)) {
        char* slash = std::strrchr(dir, '/');
        if (slash == dir) slash[1] = '\0';  // "/r.json": the root
        else if (slash) *slash = '\0';
        (void)g_dir.open(AT_FDCWD, slash ? dir : ".", O_PATH | O_DIRECTORY);
    }
    errno = saved_errno;
}

void report_before_uid_change(const char* path, uid_t uid) noexcept {
    const int saved_errno = errno;
    GOMETRICS_BUFFER static char final_path[4096];  // the program's thread: no stack to spare
    const int dir = g_dir.fd();
    if (dir >= 0 && !g_given.is_open() && expand(path, final_path) &&
        g_given.open(dir, base_name(final_path), O_WRONLY | O_CREAT, 0644) == 0 &&
        fchown(g_given.fd(), uid, static_cast<gid_t>(-1)) != 0)
        g_given.close();
    errno = saved_errno;
}

void write_report(const char* path, std::span<const collect::Metric* const> metrics, const uint64_t* words,
                  std::span<const size_t> word_offset) noexcept {
    const int saved_errno = errno;
    GOMETRICS_BUFFER static char final_path[4096], tmp[4096 + 32];  // one writer: the exit path or the crash handler
    if (!expand(path, final_path)) {
        log::line({"cannot write report: its path is too long"});
        return;
    }
    const size_t cap = bound(metrics);
    void* mem = mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        log::line({"cannot write report ", final_path, ": out of memory"});
        errno = saved_errno;
        return;
    }
    TextWriter out(static_cast<char*>(mem), cap);
    out.format("{{\"pid\": {}, \"metrics\": [\n", getpid());
    for (size_t i = 0; i < metrics.size(); ++i) {
        const auto& m = *metrics[i];
        out.format("  {{\"name\": \"{}\", \"kind\": \"{}\", \"cumulative\": {}, \"aggregation\": \"{}\", \"value\": ",
                   m.name, kind_name(m.kind), m.cumulative, layout::aggregation_name(m.aggregation));
        value(out, m, words + word_offset[i]);
        out.format("}}{}\n", i + 1 < metrics.size() ? "," : "");
    }
    out.text("]}\n");
    const char* const text = out.view().data();

    char pid[24];
    *fmt::format_to(tmp, "{}.tmp.{}", final_path, log::dec(getpid(), pid)) = '\0';
    const size_t n = out.view().size();  // bound() leaves room for every metric: never full
    const int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int open_errno = errno;
    bool done = false;
    if (fd >= 0) {
        done = write_all(fd, text, n);
        close(fd);
        done = done && rename(tmp, final_path) == 0;
        if (!done) unlink(tmp);
    }
    if (!done && !write_in_dir(base_name(final_path), base_name(tmp), text, n) && !write_given(text, n))
        log::line({"cannot write report ", final_path, fd < 0 ? ": " : "", fd < 0 ? strerror(open_errno) : ""});
    munmap(mem, cap);
    errno = saved_errno;
}

}  // namespace gometrics::agent
