// GOMETRICS_REPORT: the final snapshot as JSON, in `gometrics-cli dump
// --format json`'s format, written at exit (temporary file + rename, so a
// reader never sees half a report).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "metric.h"

namespace gometrics::agent {

// At start-up (and in a forked child's restart): keeps the report's
// directory open, for when its path no longer leads there at exit (chroot).
void prepare_report(const char* path) noexcept;

// Before the program gives up root for `uid`, while it is single-threaded
// (a new descriptor then surprises nobody): creates the report file and
// gives it to that user, who may write it at exit but not create it in a
// directory that is not theirs. The file exists, empty, until then.
void report_before_uid_change(const char* path, uid_t uid) noexcept;

// "%p" in path becomes the pid, so that forked children write their own.
void write_report(const char* path, std::span<const collect::Metric* const> metrics, const uint64_t* words,
                  std::span<const size_t> word_offset) noexcept;

}  // namespace gometrics::agent
