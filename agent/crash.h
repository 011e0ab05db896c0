// Nothing lost when the program crashes: the final snapshot, the report and
// the trace's last line are written when a fault or abort() kills the
// process, which then dies exactly as it would have (same signal, same core
// dump). The handler stands in for the default action only: the program
// never sees it (sigaction and signal report SIG_DFL in its place), and the
// first handler the program installs replaces it, so runtimes that take
// faults as part of their work (the JVM, Go) never meet it.
#pragma once

namespace gometrics::agent {

// At start-up: takes the crash signals whose action is the default.
void crash_install() noexcept;

}  // namespace gometrics::agent
