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

// All metrics of all families, sorted by name. Built on first call into
// static storage (no allocation: the agent calls it).
std::span<const Metric* const> catalog();

}  // namespace gometrics::collect
