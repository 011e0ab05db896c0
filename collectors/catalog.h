// Every metric of every family, sorted by name: the one table.
#pragma once

#include <span>
#include <string_view>

#include "metric.h"

namespace gometrics::collect {

// Families, each defined in its own collectors/<family>.cpp.
std::span<const Metric> heap_metrics();
std::span<const Metric> profiling_metrics();
std::span<const Metric> threads_metrics();
std::span<const Metric> sync_metrics();
std::span<const Metric> cpu_metrics();
std::span<const Metric> process_metrics();
std::span<const Metric> sched_metrics();
std::span<const Metric> memory_metrics();

// Files the families read at every snapshot are opened here, once, while no
// thread of the program can be surprised by a new descriptor: at start-up,
// and in a forked child at its first counted call (after
// drop_files_after_fork() closed the parent's in the atfork handler).
void keep_files() noexcept;
void drop_files_after_fork() noexcept;
// The families' parts of it, given the texts of /proc/self/mountinfo and
// /proc/self/cgroup (empty when unreadable): both look for the process's
// cgroup, and one reading serves both.
void cpu_keep_files(std::string_view mountinfo, std::string_view cgroup) noexcept;
void cpu_drop_files() noexcept;
void memory_keep_files(std::string_view mountinfo, std::string_view cgroup) noexcept;
void memory_drop_files() noexcept;

// Facts of the process from the kept /proc/self files (procfs.cpp), for the
// agent as much as for the families.
// Whether the program confined itself with seccomp, asked now: before a
// system call of ours that a filter may forbid (opening a file, starting a
// thread). From the kept /proc/self/status, or prctl when none is kept.
// A filter the process already had when the agent started (a container's,
// a service manager's) does not count: the agent's start-up calls passed it.
bool confined_now() noexcept;
// After a refused seccomp call (the hooks): whether a filter installed since
// start-up still holds, from status; true when status cannot be read.
bool filtered_since_start() noexcept;
// The process's start time (/proc/self/stat's field 22, clock ticks after
// boot: tells a reused pid apart), through the kept file, or read directly
// when none could be kept; 0 if unknown. Opens a file then: call it where a
// descriptor may come and go (start-up, a forked child's first counted call).
uint64_t self_start_ticks() noexcept;

// The program's bytes in use as its allocator counts them
// (AllocatorStats::in_use), now; 0 when it keeps no statistics. An attached
// agent reads it at the attach: the heap from before it.
uint64_t allocator_in_use_now() noexcept;

// How many metrics the table holds at most (the publisher's arrays too).
inline constexpr size_t kMaxMetrics = 256;

// All metrics of all families, sorted by name. Built on first call into
// static storage (no allocation: the agent calls it).
std::span<const Metric* const> catalog();

}  // namespace gometrics::collect
