// Reading /proc and cgroup files without allocating: whole small files into
// caller buffers with plain syscalls, and pure parsers over their text (unit
// tested in tests/unit/test_procfs.cpp). Used at publish time and at thread
// exit, never on a hot path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "metric.h"

namespace gometrics::collect::procfs {

// Reads a whole (small) file, relative to `dirfd` (AT_FDCWD for an absolute
// path), into buf; the text, or nullopt when it cannot be opened or read.
// Longer files are truncated to the buffer.
std::optional<std::string_view> read_file(int dirfd, const char* path, char* buf, size_t size) noexcept;

// The number after "Key:" on its line of a /proc/<pid>/status text
// ("VmRSS:\t  1234 kB" gives 1234: the unit is the caller's business).
std::optional<uint64_t> status_field(std::string_view status, std::string_view key) noexcept;

// /proc/<pid>/stat fields we use (numbers as in proc(5)); the command name
// in parentheses may itself hold spaces and parentheses.
struct Stat {
    uint64_t minflt, majflt;  // page faults without and with I/O
    uint64_t utime, stime;    // clock ticks
    uint64_t num_threads;
    uint64_t starttime;       // clock ticks after boot
};
std::optional<Stat> parse_stat(std::string_view text) noexcept;

// /proc/<pid>/task/<tid>/schedstat: "run_ns wait_ns timeslices".
struct Schedstat {
    uint64_t run_ns, wait_ns, timeslices;
};
std::optional<Schedstat> parse_schedstat(std::string_view text) noexcept;

// cgroup v2: the process's group from /proc/self/cgroup (the "0::" line),
// the cgroup2 mount from /proc/self/mountinfo (its mount point and the
// root of the hierarchy it shows), and a group's cpu.max quota in CPUs
// ("max 100000" is no limit: nullopt).
std::optional<std::string_view> cgroup_v2_path(std::string_view proc_self_cgroup) noexcept;
struct Mount {
    std::string_view root, mount_point;
};
std::optional<Mount> cgroup2_mount(std::string_view mountinfo) noexcept;
std::optional<double> parse_cpu_max(std::string_view text) noexcept;

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

// Whether the program confined itself with seccomp, asked now: before a
// system call of ours that a filter may forbid (opening a file, starting a
// thread). From the kept /proc/self/status, or prctl when none is kept.
bool confined_now() noexcept;

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
    Stat stat;
};
const SelfStatus& self_status(const Snapshot& s);

// getrusage(RUSAGE_SELF) once per snapshot: CPU times, faults and context
// switches of every thread, the ended ones included.
struct Usage {
    uint64_t user_ns, system_ns;
    uint64_t minflt, majflt, nvcsw, nivcsw;
};
const Usage& self_usage(const Snapshot& s);

}  // namespace gometrics::collect::procfs
