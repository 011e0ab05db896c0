// The publisher: owns the segment and the values buffer, computes snapshots
// from the catalogue and publishes them, on its own thread and at exit.
#pragma once

#include <cstdint>

namespace gometrics::agent {

// Creates the segment and starts the publisher thread. Counting works
// whether or not this succeeds; a failure is said once on stderr.
void publisher_start() noexcept;

// At exit: stops the thread, publishes a final snapshot, writes the report
// (GOMETRICS_REPORT) and removes the segment.
void publisher_shutdown() noexcept;

// In a forked child (atfork handler, trivial): forget the parent's segment
// and thread; publisher_start() runs again at the child's first counted call.
void publisher_forget_after_fork() noexcept;

}  // namespace gometrics::agent
