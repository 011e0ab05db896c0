// The process family: what the kernel knows about the whole process, read
// at publish time (/proc/self/status, /proc/self/fd, getrusage).
#include <fcntl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "agent_facts.h"
#include "buffer.h"
#include "catalog.h"
#include "dirwalk.h"
#include "kept_file.h"
#include "procfs.h"

namespace gometrics::collect {

namespace {

// Entries of /proc/self/fd, counted with getdents64 on the kept directory
// (opendir would allocate); the agent's kept descriptors are left out.
uint64_t count_fds(const Snapshot& s) {
    if (procfs::self_status(s).confined) return 0;  // getdents64 is not ours to call then
    const int dir = procfs::self_dir(procfs::Self::kFdDir);
    if (dir < 0) return 0;
    uint64_t n = 0;
    // Publisher only; static: this may run on a small stack of the program's.
    GOMETRICS_BUFFER alignas(8) static char buf[8192];
    sys::for_each_dirent(dir, buf, sizeof buf,
                         [&](const char* name) { n += name[0] != '.' && !sys::is_kept_entry(dir, name); });
    return n;
}
PerSnapshot<uint64_t, count_fds> g_fds;

void rss(const Snapshot& s, uint64_t* out) { *out = procfs::self_status(s).rss_kib * 1024; }
void virtual_size(const Snapshot& s, uint64_t* out) { *out = procfs::self_status(s).vm_size_kib * 1024; }

// A soft resource limit, none as MaxInt64 (the convention of
// /memory/limit:bytes and Go's gomemlimit); getrlimit is not ours to call
// once the program confined itself: the last value stands.
template <int Resource>
void soft_limit(const Snapshot& s, uint64_t* out) {
    static uint64_t last = 0;
    rlimit r{};
    if ((!last || !procfs::self_status(s).confined) && getrlimit(Resource, &r) == 0)
        last = r.rlim_cur == RLIM_INFINITY || r.rlim_cur > uint64_t{INT64_MAX} ? uint64_t{INT64_MAX} : r.rlim_cur;
    *out = last;
}
void fds(const Snapshot& s, uint64_t* out) { *out = g_fds.get(s); }
void major(const Snapshot& s, uint64_t* out) { *out = procfs::self_usage(s).majflt; }
void minor(const Snapshot& s, uint64_t* out) { *out = procfs::self_usage(s).minflt; }
void voluntary(const Snapshot& s, uint64_t* out) { *out = procfs::self_usage(s).nvcsw; }
void involuntary(const Snapshot& s, uint64_t* out) { *out = procfs::self_usage(s).nivcsw; }
void uptime(const Snapshot& s, uint64_t* out) {
    // Process start is in clock ticks after boot, as CLOCK_BOOTTIME counts.
    const procfs::SelfStatus& st = procfs::self_status(s);
    timespec now;
    clock_gettime(CLOCK_BOOTTIME, &now);
    const double start = double(st.stat.starttime) / double(sysconf(_SC_CLK_TCK));
    const double up = double(now.tv_sec) + double(now.tv_nsec) * 1e-9 - start;
    put_f64(out, st.ok && up > 0 ? up : 0);
}

void attached_at(const Snapshot&, uint64_t* out) { put_f64(out, double(agent::attach_time_ns()) * 1e-9); }

using layout::kKindFloat64;
using layout::kKindUint64;

constexpr Metric kProcess[] = {
    {"/process/ctxswitches/involuntary:switches", kKindUint64, true, kAggSum,
     "Times a thread of the process was preempted (its timeslice ended, or a more urgent task woke).",
     involuntary},
    {"/process/ctxswitches/voluntary:switches", kKindUint64, true, kAggSum,
     "Times a thread of the process gave up the CPU by blocking (I/O, a lock, a sleep).", voluntary},
    {"/process/attached-at:seconds", kKindFloat64, false, kAggNone,
     "When gometrics-cli attach loaded the agent into the running process, in seconds since the Unix epoch: "
     "cumulative metrics count from then. 0 when the agent was preloaded.",
     attached_at},
    {"/process/faults/major:faults", kKindUint64, true, kAggSum,
     "Page faults of the process that needed I/O (reading a mapped file or swap).", major},
    {"/process/faults/minor:faults", kKindUint64, true, kAggSum,
     "Page faults of the process served without I/O (first touch of memory, shared pages).", minor},
    {"/process/fds/limit:fds", kKindUint64, false, kAggNone,
     "The most file descriptors the process may have open: its soft RLIMIT_NOFILE.", soft_limit<RLIMIT_NOFILE>},
    {"/process/fds/open:fds", kKindUint64, false, kAggSum,
     "Open file descriptors of the process, the few the agent keeps for itself left out.", fds},
    {"/process/memory/rss:bytes", kKindUint64, false, kAggSum,
     "Resident set size: the process's memory in RAM now (VmRSS), shared pages included.", rss, {},
     procfs::status_readable},
    {"/process/memory/virtual-limit:bytes", kKindUint64, false, kAggNone,
     "The most address space the process may map: its soft RLIMIT_AS, or 9223372036854775807 when there is none.",
     soft_limit<RLIMIT_AS>},
    {"/process/memory/virtual:bytes", kKindUint64, false, kAggSum, "Address space the process has mapped (VmSize).",
     virtual_size, {}, procfs::status_readable},
    {"/process/uptime:seconds", kKindFloat64, false, kAggMax, "Wall-clock time since the process started.", uptime, {},
     procfs::status_readable},
};

}  // namespace

std::span<const Metric> process_metrics() { return kProcess; }

}  // namespace gometrics::collect
