// `exec --profile KIND=FILE`: the profiles of CMD's processes, from the
// profile reports they wrote at exit.
#pragma once

#include <string>
#include <vector>

namespace gometrics::cli {

// One --profile KIND=FILE.
struct ProfileRequest {
    std::string kind;
    std::string file;  // "%p" in it: one file per process of the tree
};

// Failure(kExitUsage) for a malformed one, before anything runs.
std::vector<ProfileRequest> parse_profiles(const std::vector<std::string>& given);

// Converts the profile reports CMD's processes wrote in dir into the
// requested files. False, with one line on stderr each, when a profile could
// not be written (no report: the process was killed or ended with _exit; or
// that kind was not sampled).
bool write_profiles(const std::vector<ProfileRequest>& requests, const std::string& dir, int cmd_pid, bool quiet);

}  // namespace gometrics::cli
