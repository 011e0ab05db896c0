// Every metric of every family, sorted by name: the one table.
#pragma once

#include <span>

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
// The families' parts of it.
void cpu_keep_files() noexcept;
void cpu_drop_files() noexcept;
void memory_keep_files() noexcept;
void memory_drop_files() noexcept;

// All metrics of all families, sorted by name. Built on first call into
// static storage (no allocation: the agent calls it).
std::span<const Metric* const> catalog();

}  // namespace gometrics::collect
