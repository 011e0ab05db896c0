// GOMETRICS_TRACE: one compact line per interval, in the spirit of Go's
// GODEBUG=gctrace=1, written by the publisher from the words it has just
// computed. The format is documented field by field in docs/agent.md ("Trace
// lines") and parsed by tests/preload/test_trace.py.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "metric.h"

namespace gometrics::agent {

// Start-up (constructor): reads GOMETRICS_TRACE ("1" = stderr, any other
// non-empty value but "0" = a file to append to, "%p" -> pid). A file that
// cannot be opened switches tracing off with one line on stderr.
void trace_configure() noexcept;
// Whether trace lines are being written (they need a publisher thread even
// in a single-threaded program: one line per interval).
bool trace_enabled() noexcept;

// The publisher's view of one snapshot: the metrics in table order, the
// words, and where each metric's value starts.
struct TraceView {
    std::span<const collect::Metric* const> metrics;
    const uint64_t* words;
    std::span<const size_t> word_offset;
    uint64_t time_ns;  // CLOCK_REALTIME of the snapshot
};

// After every snapshot, by the single writer. The first snapshot of a
// process (or of a forked child, after trace_restart) sets the baseline for
// rates; then a line is written once an interval has passed. At exit
// (`final`) a line marked "exit" is written whatever the time.
void trace_snapshot(const TraceView& view, uint32_t interval_ms, bool final) noexcept;

// The table changed or the process is a fresh fork: forget the baseline.
void trace_restart() noexcept;

}  // namespace gometrics::agent
