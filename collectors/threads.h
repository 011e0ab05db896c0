// The threads family: live and created threads, and their stacks.
#pragma once

#include <cstdint>

#include "metric.h"

namespace gometrics::collect {

// Live threads of the process at this snapshot, the main thread and threads
// the agent did not see start included, the agent's publisher excluded
// (/proc/self/status, the kernel's own count).
uint64_t live_threads(const Snapshot& s);

// Stack bytes of the live threads counted by live_threads(): for each
// thread the agent saw start, the stack size its attributes asked for (0
// for a stack the program supplied itself, which is the program's own
// memory, heap or mapping); for every other live thread (the main thread,
// threads started before the agent or by a raw clone) the default stack
// size of new threads (pthread_getattr_default_np: RLIMIT_STACK at start-up,
// 8 MiB when unlimited), which for the main thread is how far its stack may
// grow. Sizes are reserved address space, not resident pages; guard pages
// and the publisher's own stack are left out.
uint64_t os_stack_bytes(const Snapshot& s);

}  // namespace gometrics::collect
