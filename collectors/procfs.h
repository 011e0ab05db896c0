// The /proc/self files the families read at every snapshot, kept open, and
// what several families read from them once per snapshot (the parsers are
// sys's, proc.h). Used at publish time and at thread exit, never on a hot path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "metric.h"
#include "proc.h"

namespace gometrics::collect::procfs {

// The /proc/self files and directories read at every snapshot. They are
// opened once, while no thread of the program can be surprised by a new
// descriptor (keep_files(): the agent's start-up and a forked child's first
// counted call), kept at high numbers (sys::KeptFile) and re-read with pread:
// after start-up the agent opens nothing of its own accord.
enum class Self { kStat, kStatus, kSchedstat, kFdDir, kTaskDir, kCount };
std::optional<std::string_view> read_self(Self file, char* buf, size_t size) noexcept;
// A kept directory's descriptor, rewound, or -1 when it is lost.
int self_dir(Self dir) noexcept;

// Opens the kept /proc/self files (collect::keep_files(), catalog.h), and
// closes them in a forked child, where they are the parent's.
void keep_self_files() noexcept;
void drop_self_files() noexcept;

// Where the brk heap begins (stat's start_brk), read as the files were kept;
// 0 if it could not be.
uintptr_t start_brk() noexcept;

// What several families read from /proc/self once per snapshot.
struct SelfStatus {
    bool ok;                 // false when /proc/self/status or stat could not be read
    // The program confined itself with seccomp (status' "Seccomp:" field is
    // not 0): only the system calls it is most likely to allow remain ours
    // to make (pread, write, futex, clock_gettime, mmap and munmap).
    bool confined;
    uint64_t threads;        // Threads: all tasks of the process, the agent's included
    uint64_t rss_kib;        // VmRSS
    uint64_t vm_size_kib;    // VmSize: the address space mapped
    uint64_t ctx_voluntary, ctx_involuntary;
    sys::ProcStat stat;
};
const SelfStatus& self_status(const Snapshot& s);

// Whether status and stat could be read: the availability of the metrics
// built on them, decided at the first question, as the metric set is.
bool status_readable() noexcept;

// getrusage(RUSAGE_SELF) once per snapshot: CPU times, faults and context
// switches of every thread, the ended ones included.
struct Usage {
    uint64_t user_ns, system_ns;
    uint64_t minflt, majflt, nvcsw, nivcsw;
};
const Usage& self_usage(const Snapshot& s);

}  // namespace gometrics::collect::procfs
