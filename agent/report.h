// GOMETRICS_REPORT: the final snapshot as JSON, in `gometrics-cli dump
// --format json`'s format, written at exit (temporary file + rename, so a
// reader never sees half a report).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "metric.h"

namespace gometrics::agent {

// At start-up (and in a forked child's restart): keeps the report's
// directory open, for when its path no longer leads there at exit (chroot).
void prepare_report(const char* path) noexcept;

// "%p" in path becomes the pid, so that forked children write their own.
void write_report(const char* path, std::span<const collect::Metric* const> metrics, const uint64_t* words,
                  std::span<const size_t> word_offset) noexcept;

}  // namespace gometrics::agent
