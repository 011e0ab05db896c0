// /proc and cgroup readers and parsers; see procfs.h.
#include "procfs.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

#include "kept_file.h"
#include "log.h"

namespace gometrics::collect::procfs {

namespace {

// Parses a decimal number at the start of `s` (after blanks), advancing s.
std::optional<uint64_t> take_u64(std::string_view& s) {
    size_t i = 0;
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    uint64_t v = 0;
    const auto r = std::from_chars(s.data() + i, s.data() + s.size(), v);
    if (r.ec != std::errc{}) return std::nullopt;
    s.remove_prefix(static_cast<size_t>(r.ptr - s.data()));
    return v;
}

// The next space-separated field of `s`, advancing s.
std::string_view take_field(std::string_view& s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    const size_t end = s.find_first_of(" \n");
    const std::string_view f = s.substr(0, end);
    s.remove_prefix(f.size());
    return f;
}

// Each line of `text`, in order, until f returns true; whether it did.
template <class F>
bool any_line(std::string_view text, F&& f) {
    while (!text.empty()) {
        const size_t nl = text.find('\n');
        if (f(text.substr(0, nl))) return true;
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
    return false;
}

}  // namespace

std::optional<std::string_view> read_file(int dirfd, const char* path, char* buf, size_t size) noexcept {
    const int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    size_t n = 0;
    while (n < size) {
        const size_t want = size - n;
        const ssize_t r = read(fd, buf + n, want);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += static_cast<size_t>(r);
        // /proc and cgroup files give all they have in one read when it
        // fits: a short read is the end. That saves a read per file, and
        // there is one file per thread to read.
        if (static_cast<size_t>(r) < want) break;
    }
    close(fd);
    if (n == 0) return std::nullopt;
    return std::string_view(buf, n);
}

std::optional<uint64_t> status_field(std::string_view status, std::string_view key) noexcept {
    std::optional<uint64_t> out;
    any_line(status, [&](std::string_view line) {
        if (line.size() <= key.size() || line.substr(0, key.size()) != key || line[key.size()] != ':') return false;
        line.remove_prefix(key.size() + 1);
        out = take_u64(line);
        return true;
    });
    return out;
}

std::optional<Stat> parse_stat(std::string_view text) noexcept {
    // "pid (comm) state ppid ...": fields are counted from after the last
    // ')', since comm may contain anything. There, field 3 (state) is first.
    const size_t paren = text.rfind(')');
    if (paren == std::string_view::npos) return std::nullopt;
    std::string_view rest = text.substr(paren + 1);
    Stat st{};
    for (int field = 3; field <= 22; ++field) {
        const std::string_view f = take_field(rest);
        if (f.empty()) return std::nullopt;
        if (field == 3) continue;  // state: a letter
        uint64_t v = 0;
        // Some fields (tty_nr, priority, nice) may be negative: we skip them.
        const auto r = std::from_chars(f.data(), f.data() + f.size(), v);
        const bool number = r.ec == std::errc{} && r.ptr == f.data() + f.size();
        switch (field) {
            case 10: st.minflt = v; break;
            case 12: st.majflt = v; break;
            case 14: st.utime = v; break;
            case 15: st.stime = v; break;
            case 20: st.num_threads = v; break;
            case 22: st.starttime = v; break;
            default: continue;
        }
        if (!number) return std::nullopt;
    }
    return st;
}

std::optional<Schedstat> parse_schedstat(std::string_view text) noexcept {
    const auto run = take_u64(text), wait = take_u64(text), slices = take_u64(text);
    if (!run || !wait || !slices) return std::nullopt;
    return Schedstat{*run, *wait, *slices};
}

std::optional<std::string_view> cgroup_v2_path(std::string_view proc_self_cgroup) noexcept {
    std::optional<std::string_view> out;
    any_line(proc_self_cgroup, [&](std::string_view line) {
        if (line.substr(0, 3) != "0::") return false;
        out = line.substr(3);
        return true;
    });
    return out;
}

std::optional<Mount> cgroup2_mount(std::string_view mountinfo) noexcept {
    // "id parent major:minor root mount-point options [optional...] - fstype source super-options"
    std::optional<Mount> out;
    any_line(mountinfo, [&](std::string_view line) {
        const size_t dash = line.find(" - ");
        if (dash == std::string_view::npos) return false;
        std::string_view after = line.substr(dash + 3);
        if (take_field(after) != "cgroup2") return false;
        std::string_view before = line.substr(0, dash);
        take_field(before), take_field(before), take_field(before);
        const std::string_view root = take_field(before), mount_point = take_field(before);
        if (root.empty() || mount_point.empty()) return false;
        out = Mount{root, mount_point};
        return true;
    });
    return out;
}

std::optional<double> parse_cpu_max(std::string_view text) noexcept {
    // "$MAX $PERIOD": MAX is "max" or a quota in microseconds per PERIOD.
    const std::string_view quota = take_field(text);
    if (quota.empty() || quota == "max") return std::nullopt;
    std::string_view q = quota;
    const auto quota_us = take_u64(q);
    const auto period_us = take_u64(text);
    if (!quota_us || !q.empty() || !period_us || *period_us == 0) return std::nullopt;
    return double(*quota_us) / double(*period_us);
}

namespace {

struct SelfFile {
    const char* path;
    int flags;
    const char* off;  // what stops when the program takes it away
};
constexpr SelfFile kSelfFiles[] = {
    {"/proc/self/stat", O_RDONLY, "process, thread and CPU metrics"},
    {"/proc/self/status", O_RDONLY, "process, thread and CPU metrics"},
    {"/proc/self/schedstat", O_RDONLY, "scheduler latencies"},  // the main thread's
    {"/proc/self/fd", O_RDONLY | O_DIRECTORY, "/process/open-fds"},
    {"/proc/self/task", O_RDONLY | O_DIRECTORY, "scheduler latencies"},
};
static_assert(std::size(kSelfFiles) == size_t(Self::kCount));
constinit sys::KeptFile g_self[size_t(Self::kCount)];

sys::KeptFile& checked(Self which) noexcept {
    sys::KeptFile& f = g_self[size_t(which)];
    f.fd();
    if (f.lost_now())
        agent::log::line({kSelfFiles[size_t(which)].path, " was closed by the program: ", kSelfFiles[size_t(which)].off,
                          " stop"});
    return f;
}

SelfStatus read_self_status(const Snapshot&) {
    SelfStatus out{};
    static char buf[4096];  // publisher only; static: this may run on a small stack of the program's
    const auto status = read_self(Self::kStatus, buf, sizeof buf);
    if (!status) return out;
    const auto threads = status_field(*status, "Threads");
    out.confined = status_field(*status, "Seccomp").value_or(0) != 0;
    out.rss_kib = status_field(*status, "VmRSS").value_or(0);
    out.vm_size_kib = status_field(*status, "VmSize").value_or(0);
    out.ctx_voluntary = status_field(*status, "voluntary_ctxt_switches").value_or(0);
    out.ctx_involuntary = status_field(*status, "nonvoluntary_ctxt_switches").value_or(0);
    const auto stat_text = read_self(Self::kStat, buf, sizeof buf);
    const auto stat = stat_text ? parse_stat(*stat_text) : std::nullopt;
    if (!threads || !stat) return out;
    out.threads = *threads;
    out.stat = *stat;
    out.ok = true;
    return out;
}

PerSnapshot<SelfStatus, read_self_status> g_self_status;

uint64_t timeval_ns(const timeval& tv) { return uint64_t(tv.tv_sec) * 1000000000ULL + uint64_t(tv.tv_usec) * 1000; }

Usage read_usage(const Snapshot& s) {
    rusage ru{};
    if (!g_self_status.get(s).confined) getrusage(RUSAGE_SELF, &ru);
    return {timeval_ns(ru.ru_utime), timeval_ns(ru.ru_stime),     uint64_t(ru.ru_minflt),
            uint64_t(ru.ru_majflt),  uint64_t(ru.ru_nvcsw),       uint64_t(ru.ru_nivcsw)};
}

PerSnapshot<Usage, read_usage> g_usage;

}  // namespace

std::optional<std::string_view> read_self(Self file, char* buf, size_t size) noexcept {
    return checked(file).read(buf, size);
}

int self_dir(Self dir) noexcept {
    const int fd = checked(dir).fd();
    if (fd >= 0 && lseek(fd, 0, SEEK_SET) != 0) return -1;
    return fd;
}

bool confined_now() noexcept {
    char buf[2048];  // "Seccomp:" comes about half way into status
    if (const auto text = read_self(Self::kStatus, buf, sizeof buf))
        if (const auto mode = status_field(*text, "Seccomp")) return *mode != 0;
    return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) > 0;
}

void keep_self_files() noexcept {
    for (size_t i = 0; i < size_t(Self::kCount); ++i) (void)g_self[i].open(AT_FDCWD, kSelfFiles[i].path, kSelfFiles[i].flags);
}

void drop_self_files() noexcept {
    for (sys::KeptFile& f : g_self) f.close();
}

const SelfStatus& self_status(const Snapshot& s) { return g_self_status.get(s); }
const Usage& self_usage(const Snapshot& s) { return g_usage.get(s); }

}  // namespace gometrics::collect::procfs
