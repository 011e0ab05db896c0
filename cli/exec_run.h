// `exec`: running CMD with its tree followed, as a child subreaper that
// passes signals on.
#pragma once

#include <string>
#include <vector>

#include "exec_tree.h"

namespace gometrics::cli {

struct Ended {
    int pid = 0;     // CMD's
    int status = 0;  // CMD's exit status, 128+N for a signal death
    int signal = 0;
};

// Runs CMD and, while it runs, follows its process tree (segments seen in
// /dev/shm, polled every 100 ms). Returns how CMD ended; Failure with 127 or
// 126 when it could not be run.
Ended run(const std::vector<std::string>& command, Tree& tree);

}  // namespace gometrics::cli
