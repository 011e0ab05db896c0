// What collectors see of the agent, and all they see: the per-thread
// counters (slots.h), the agent's lifecycle (agent.h), its voice (log.h),
// and the few facts below. Collectors have this folder on their include
// path and not agent/, so a collector that includes a hook's header (real.h,
// profile.h, thread_state.h) does not compile. The agent's own headers
// include this one for the declarations they share with it.
#pragma once

#include <cstdint>

#include "../agent.h"
#include "../log.h"
#include "../slots.h"

#pragma GCC visibility push(hidden)  // see real.h

namespace gometrics::agent {

// Threads as the pthread_create wrapper (hooks_pthread.cpp) counts them.
struct ThreadCounts {
    uint64_t started;     // threads whose start routine the agent wrapped and saw begin
    uint64_t exited;      // of those, threads that have ended
    uint64_t stack_bytes; // stack sizes of the started threads not yet ended (see hooks_pthread.cpp)
    uint64_t started_before_attach;  // of `started`, those before the agent was last attached again
};
ThreadCounts thread_counts() noexcept;

// The tid of the publisher thread (0 before it starts, and in a forked
// child until it restarts). Set by the publisher thread itself; never
// cleared at exit, so a reader can check whether that task still exists.
int publisher_tid() noexcept;

// Memory the agent holds for itself: thread slots, the publisher's state,
// values buffer and segment, and the bootstrap arena (state.cpp).
uint64_t own_bytes() noexcept;

// CLOCK_REALTIME when `gometrics-cli attach` loaded the agent into the
// running process (or attached it again), 0 when it was preloaded.
uint64_t attach_time_ns() noexcept;

// An attached agent's heap from before the attach: the allocator's own
// in-use figure read just before the hooks took over (0 when preloaded, or
// when the allocator keeps no statistics). The blocks from before that each
// thread frees since are in its slot (before_attach_freed).
uint64_t attach_heap_baseline() noexcept;

// Where the malloc the agent forwards to lives (the allocator that really
// serves the program), for dladdr.
void* real_malloc_address() noexcept;

// GOMETRICS_ALLOCATOR=jemalloc: the private libjemalloc's mallctl after a
// switch (real.h), else nullptr.
using MallctlFn = int (*)(const char*, void*, size_t*, void*, size_t);
MallctlFn switched_mallctl() noexcept;

namespace profile {
// Memory mapped for profiling (/memory/classes/profiling/buckets:bytes).
uint64_t mapped_bytes() noexcept;
}  // namespace profile

}  // namespace gometrics::agent

#pragma GCC visibility pop
