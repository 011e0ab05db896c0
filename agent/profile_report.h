// GOMETRICS_PROFILE_REPORT: the sampled stacks and the executable mappings,
// written as JSON at exit, for `gometrics-cli profile --from-report` to turn
// into a pprof profile after the process (and its segment) is gone.
#pragma once

namespace gometrics::agent {

// "%p" in path becomes the pid, so that forked children write their own.
// Temporary file + rename: a reader never sees half a report. Call under a
// Guard (the JSON is built with fmt, which allocates).
void write_profile_report(const char* path) noexcept;

}  // namespace gometrics::agent
