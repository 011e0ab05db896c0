// /proc and cgroup readers and parsers; see procfs.h.
#include "procfs.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>

#include "buffer.h"
#include "catalog.h"
#include "clocks.h"
#include "kept_file.h"
#include "agent_facts.h"

namespace gometrics::collect::procfs {

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

// Says once that the program closed one of these files, after a use found it.
void say_if_lost(Self which) noexcept {
    if (g_self[size_t(which)].lost_now())
        agent::log::line({kSelfFiles[size_t(which)].path, " was closed by the program: ", kSelfFiles[size_t(which)].off,
                          " stop"});
}

// The seccomp mode and filter count at start-up ("Seccomp_filters:" since
// Linux 5.9; without it, only a mode that rises counts).
struct Seccomp {
    uint64_t mode, filters;
};
constinit Seccomp g_seccomp_at_start{};
constinit bool g_seccomp_noted = false;

// Read once, as the files are kept: what stat says that a process never
// changes (0: not known), and whether status and stat read (-1: not known).
constinit std::atomic<uint64_t> g_start_ticks{0};
constinit std::atomic<uintptr_t> g_start_brk{0};
constinit std::atomic<int> g_status_readable{-1};

// has_threads: whether status has the line the snapshots read first (it
// comes before "Seccomp:", so asking costs no longer a scan).
std::optional<Seccomp> seccomp_of(std::string_view status, bool* has_threads = nullptr) {
    static constexpr std::string_view kKeys[] = {"Seccomp", "Seccomp_filters", "Threads"};
    std::optional<uint64_t> v[std::size(kKeys)];
    sys::status_fields(status, kKeys, v);
    if (has_threads) *has_threads = v[2].has_value();
    if (!v[0]) return std::nullopt;
    return Seccomp{*v[0], v[1].value_or(0)};
}

bool beyond_start(const Seccomp& now) {
    return now.mode > g_seccomp_at_start.mode || now.filters > g_seccomp_at_start.filters;
}

// Status' text when it proves itself one (it has "Seccomp:"), read without
// a check the program's filter may forbid; notes a confinement found there.
std::optional<std::string_view> peek_status(char* buf, size_t size) {
    const auto text = g_self[size_t(Self::kStatus)].peek(buf, size);
    const auto now = text ? seccomp_of(*text) : std::nullopt;
    if (!now) return std::nullopt;
    if (beyond_start(*now)) sys::set_confined(true);
    return text;
}

SelfStatus read_self_status(const Snapshot&) {
    SelfStatus out{};
    GOMETRICS_BUFFER static char buf[4096];  // publisher only; static: this may run on a small stack of the program's
    // Whether the program confined itself decides which calls are ours to
    // make, so status is read first, and by pread alone.
    auto status = peek_status(buf, sizeof buf);
    if (!status) status = read_self(Self::kStatus, buf, sizeof buf);  // finds a lost file
    if (!status) return out;
    static constexpr std::string_view kKeys[] = {"Threads", "VmRSS", "VmSize", "voluntary_ctxt_switches",
                                                 "nonvoluntary_ctxt_switches"};
    std::optional<uint64_t> v[std::size(kKeys)];
    sys::status_fields(*status, kKeys, v);
    const auto threads = v[0];
    out.confined = sys::confined();
    out.rss_kib = v[1].value_or(0);
    out.vm_size_kib = v[2].value_or(0);
    out.ctx_voluntary = v[3].value_or(0);
    out.ctx_involuntary = v[4].value_or(0);
    const auto stat_text = read_self(Self::kStat, buf, sizeof buf);
    const auto stat = stat_text ? sys::parse_stat(*stat_text) : std::nullopt;
    if (!threads || !stat) return out;
    out.threads = *threads;
    out.stat = *stat;
    out.ok = true;
    return out;
}

PerSnapshot<SelfStatus, read_self_status> g_self_status;

Usage read_usage(const Snapshot& s) {
    rusage ru{};
    if (!g_self_status.get(s).confined) getrusage(RUSAGE_SELF, &ru);
    return {sys::to_ns(ru.ru_utime), sys::to_ns(ru.ru_stime),     uint64_t(ru.ru_minflt),
            uint64_t(ru.ru_majflt),  uint64_t(ru.ru_nvcsw),       uint64_t(ru.ru_nivcsw)};
}

PerSnapshot<Usage, read_usage> g_usage;

}  // namespace

std::optional<std::string_view> read_self(Self file, char* buf, size_t size) noexcept {
    const auto text = g_self[size_t(file)].read(buf, size);  // checks the descriptor is still ours
    say_if_lost(file);
    return text;
}

int self_dir(Self dir) noexcept {
    const int fd = g_self[size_t(dir)].fd();
    say_if_lost(dir);
    if (fd >= 0 && lseek(fd, 0, SEEK_SET) != 0) return -1;
    return fd;
}

}  // namespace gometrics::collect::procfs

namespace gometrics::collect {

using procfs::read_self;
using procfs::Self;

bool confined_now() noexcept {
    if (sys::confined()) return true;
    char buf[2048];  // "Seccomp:" comes about half way into status
    if (procfs::peek_status(buf, sizeof buf)) return sys::confined();
    return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) > 0;
}

bool filtered_since_start() noexcept {
    char buf[2048];
    const auto text = procfs::g_self[size_t(Self::kStatus)].peek(buf, sizeof buf);
    const auto now = text ? procfs::seccomp_of(*text) : std::nullopt;
    return !now || procfs::beyond_start(*now);
}

uint64_t self_start_ticks() noexcept {
    if (const uint64_t ticks = procfs::g_start_ticks.load(std::memory_order_relaxed)) return ticks;
    static char buf[1024];  // static: this may run on a small stack of the program's
    auto text = read_self(Self::kStat, buf, sizeof buf);
    if (!text) text = sys::read_file(AT_FDCWD, "/proc/self/stat", buf, sizeof buf);
    const auto stat = text ? sys::parse_stat(*text) : std::nullopt;
    return stat ? stat->starttime : 0;
}

}  // namespace gometrics::collect

namespace gometrics::collect::procfs {

void keep_self_files() noexcept {
    for (size_t i = 0; i < size_t(Self::kCount); ++i) (void)g_self[i].open(AT_FDCWD, kSelfFiles[i].path, kSelfFiles[i].flags);
    // The seccomp state and readability once per process (a forked child
    // inherits its parent's), each file read once for all that is noted.
    char buf[2048];
    bool has_threads = false;
    if (!g_seccomp_noted || g_status_readable.load(std::memory_order_relaxed) < 0) {
        const auto text = g_self[size_t(Self::kStatus)].peek(buf, sizeof buf);
        const auto seccomp = text ? seccomp_of(*text, &has_threads) : std::nullopt;
        if (seccomp && !g_seccomp_noted) {
            g_seccomp_at_start = *seccomp;
            g_seccomp_noted = true;
        }
    }
    // The start is the child's own.
    const auto stat_text = read_self(Self::kStat, buf, sizeof buf);
    const auto stat = stat_text ? sys::parse_stat(*stat_text) : std::nullopt;
    if (!stat) return;
    g_start_ticks.store(stat->starttime, std::memory_order_relaxed);
    g_start_brk.store(sys::stat_field(*stat_text, 47).value_or(0), std::memory_order_relaxed);
    // Only a yes: a no is left to the question's own reading.
    if (has_threads) g_status_readable.store(1, std::memory_order_relaxed);
}

void drop_self_files() noexcept {
    for (sys::KeptFile& f : g_self) f.close();
    g_start_ticks.store(0, std::memory_order_relaxed);
}

uintptr_t start_brk() noexcept { return g_start_brk.load(std::memory_order_relaxed); }

const SelfStatus& self_status(const Snapshot& s) { return g_self_status.get(s); }

bool status_readable() noexcept {
    // Past the per-snapshot cache: asked in a snapshot (memory's sum rule
    // looks at which leaves exist), a probe there made it read status again.
    int v = g_status_readable.load(std::memory_order_relaxed);
    if (v < 0) g_status_readable.store(v = read_self_status(Snapshot{}).ok, std::memory_order_relaxed);
    return v;
}
const Usage& self_usage(const Snapshot& s) { return g_usage.get(s); }

}  // namespace gometrics::collect::procfs
