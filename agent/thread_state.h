// Thread lifecycle as the pthread_create wrapper (hooks_pthread.cpp) sees
// it, for the threads and sched collectors.
//
// Thread creation and exit are rare next to malloc or a lock (each costs a
// clone and mmaps), so these are plain process-wide atomics: a thread
// counts itself in as the first thing its wrapped start routine does, and
// out in a pthread key destructor, which glibc runs however the thread ends
// (return, pthread_exit, cancellation). Both run on the thread itself, so
// `started - exited` never counts a thread out before it was counted in.
#pragma once

#include <atomic>
#include <cstdint>

#include "facts/agent_facts.h"

namespace gometrics::agent {

// thread_counts() and publisher_tid(): facts/agent_facts.h.
void set_publisher_tid(int tid) noexcept;

namespace detail {
extern std::atomic<uint64_t> g_threads_started, g_threads_exited, g_thread_stack_bytes;
// g_threads_started when the agent was attached again (attach.cpp): the
// count published starts from there, while started - exited goes on.
extern std::atomic<uint64_t> g_threads_started_before_attach;
// The calling thread's stack bytes plus one if the agent saw it start, 0
// if it did not (the main thread, say). Initial-exec, zero-initialised.
extern __thread uint64_t tls_seen_stack_plus_one [[gnu::tls_model("initial-exec")]];
// In a forked child (atfork handler, trivial): only the forking thread
// survives. Forgets the parent's other threads, its publisher and its
// queued schedstat records.
void threads_after_fork() noexcept;
}  // namespace detail

}  // namespace gometrics::agent
