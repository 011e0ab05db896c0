// The cpu family: /cpu/classes/* from getrusage at publish time, and
// /sched/gomaxprocs:threads from the affinity mask and the cgroup quota.
#include "cpu.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmath>

#include "catalog.h"
#include "cgroup.h"
#include "clocks.h"
#include "kept_file.h"
#include "proc.h"
#include "procfs.h"

namespace gometrics::collect::cpu {

uint64_t quanta(uint64_t ns) noexcept {
    // Whole seconds and the rest apart: no overflow for 2^44 seconds.
    return ((ns / sys::kNsPerSec) << 20) + ((ns % sys::kNsPerSec) << 20) / sys::kNsPerSec;
}

void Classes::step(uint64_t user_ns, uint64_t system_ns, uint64_t capacity_ns) noexcept {
    const uint64_t user = quanta(user_ns), system = quanta(system_ns), capacity = quanta(capacity_ns);
    // Kernel times only grow; keep ours monotonic even if a reading lags.
    const uint64_t used = (user > user_q_ ? user - user_q_ : 0) + (system > system_q_ ? system - system_q_ : 0);
    if (capacity > used) idle_q_ += capacity - used;
    if (user > user_q_) user_q_ = user;
    if (system > system_q_) system_q_ = system;
}

uint32_t gomaxprocs(uint32_t affinity_cpus, std::optional<double> cgroup_limit_cpus) noexcept {
    uint32_t procs = affinity_cpus ? affinity_cpus : 1;
    if (cgroup_limit_cpus) {
        double limit = std::ceil(*cgroup_limit_cpus);
        if (limit < 2) limit = 2;
        if (limit < procs) procs = static_cast<uint32_t>(limit);
    }
    return procs;
}

}  // namespace gometrics::collect::cpu

namespace gometrics::collect {

namespace {

// The process's CPUs: the main thread's affinity mask (the publisher's own
// mask is a copy taken when it started).
uint32_t affinity_cpus() {
    constexpr size_t kMaxCpus = 8192;
    unsigned long mask[kMaxCpus / (8 * sizeof(unsigned long))];
    // The system call itself says how many bytes of the mask the kernel has
    // (glibc's wrapper clears the rest): only those are counted.
    const long bytes = syscall(SYS_sched_getaffinity, getpid(), sizeof mask, mask);
    if (bytes <= 0) return 0;
    uint32_t n = 0;
    for (size_t i = 0; i < static_cast<size_t>(bytes) / sizeof(unsigned long); ++i)
        n += static_cast<uint32_t>(__builtin_popcountl(mask[i]));
    return n;
}

// The cpu.max file of our leaf cgroup v2, found and kept at start-up (as Go
// reads it at start-up: a process moved to another group later keeps the
// first one's quota).
constinit sys::KeptFile g_cpu_max;  // publisher only, opened by cpu_keep_files()

void find_cpu_max(std::string_view mountinfo, std::string_view cgroup) {
    const auto group = sys::find_cgroup(mountinfo, cgroup, {});
    static char path[512];  // static: start-up may run on a small stack
    if (group && sys::cgroup_file_path(*group, "cpu.max", path, sizeof path) > 0)
        (void)g_cpu_max.open(AT_FDCWD, path, O_RDONLY);
}

std::optional<double> cgroup_limit() {
    char buf[128];
    const auto text = g_cpu_max.read(buf, sizeof buf);
    return text ? sys::parse_cpu_max(*text) : std::nullopt;
}

// sched_getaffinity is not ours to call once the program confined itself:
// the last value stands.
uint64_t compute_gomaxprocs(const Snapshot& s) {
    static uint64_t last = 0;
    if (!last || !procfs::self_status(s).confined) last = cpu::gomaxprocs(affinity_cpus(), cgroup_limit());
    return last;
}
PerSnapshot<uint64_t, compute_gomaxprocs> g_gomaxprocs;

// The integration state: publisher only. A forked child (another pid)
// starts its own, from its own start time.
struct Integrator {
    pid_t pid = 0;
    uint64_t last_boottime_ns = 0;
    cpu::Classes classes;
};
Integrator g_cpu;

cpu::Classes compute_classes(const Snapshot& s) {
    const procfs::Usage& ru = procfs::self_usage(s);
    const uint64_t now = sys::clock_ns(CLOCK_BOOTTIME);
    const uint64_t procs = g_gomaxprocs.get(s);
    uint64_t since;
    if (g_cpu.pid != sys::self_pid()) {
        // First look: the process's life so far (its start time is in clock
        // ticks after boot, as CLOCK_BOOTTIME counts).
        g_cpu = Integrator{};
        g_cpu.pid = sys::self_pid();
        const procfs::SelfStatus& st = procfs::self_status(s);
        const uint64_t start_ns = st.ok ? sys::ticks_to_ns(st.stat.starttime) : now;
        since = start_ns < now ? start_ns : now;
    } else {
        since = g_cpu.last_boottime_ns;
    }
    g_cpu.last_boottime_ns = now;
    g_cpu.classes.step(ru.user_ns, ru.system_ns, procs * (now - since));
    return g_cpu.classes;
}
PerSnapshot<cpu::Classes, compute_classes> g_classes;

void put_q(uint64_t* out, uint64_t q) { put_f64(out, double(q) * cpu::kQuantumSeconds); }
void user(const Snapshot& s, uint64_t* out) { put_q(out, g_classes.get(s).user_q()); }
void system(const Snapshot& s, uint64_t* out) { put_q(out, g_classes.get(s).system_q()); }
void idle(const Snapshot& s, uint64_t* out) { put_q(out, g_classes.get(s).idle_q()); }
void total(const Snapshot& s, uint64_t* out) { put_q(out, g_classes.get(s).total_q()); }
void gomaxprocs(const Snapshot& s, uint64_t* out) { *out = g_gomaxprocs.get(s); }

using layout::kKindFloat64;
using layout::kKindUint64;

constexpr Metric kCpu[] = {
    {"/cpu/classes/idle:cpu-seconds", kKindFloat64, true, kAggSum,
     "CPU capacity the process left unused: /cpu/classes/total minus the other classes, never decreasing.", idle},
    {"/cpu/classes/system:cpu-seconds", kKindFloat64, true, kAggSum,
     "CPU time spent in the kernel on behalf of the process, all threads (getrusage ru_stime).", system},
    {"/cpu/classes/total:cpu-seconds", kKindFloat64, true, kAggSum,
     "Available CPU time: /sched/gomaxprocs integrated over the process's wall time; the sum of the other "
     "/cpu/classes.",
     total},
    {"/cpu/classes/user:cpu-seconds", kKindFloat64, true, kAggSum,
     "CPU time spent running the process's own code, all threads (getrusage ru_utime).", user},
    {"/sched/gomaxprocs:threads", kKindUint64, false, kAggNone,
     "CPUs the process can use at once: its affinity mask, capped by its cgroup v2 cpu.max quota rounded up "
     "(at least 2), as Go 1.25 sets GOMAXPROCS.",
     gomaxprocs},
};

}  // namespace

void cpu_keep_files(std::string_view mountinfo, std::string_view cgroup) noexcept { find_cpu_max(mountinfo, cgroup); }
void cpu_drop_files() noexcept { g_cpu_max.close(); }

std::span<const Metric> cpu_metrics() { return kCpu; }

}  // namespace gometrics::collect
