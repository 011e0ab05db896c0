// `exec`: where the agent is (GOMETRICS_AGENT, or next to the CLI).
#pragma once

#include <string>

namespace gometrics::cli {

// The absolute path of libgometrics.so; Failure(kExitError) with one line
// saying where it looked when there is none.
std::string find_agent();

}  // namespace gometrics::cli
