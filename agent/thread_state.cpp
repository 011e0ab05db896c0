// Thread lifecycle state shared by the pthread_create wrapper and the
// collectors; see threads.h.
#include "thread_state.h"

#include <cstddef>

namespace gometrics::agent {

namespace detail {
constinit std::atomic<uint64_t> g_threads_started{0}, g_threads_exited{0}, g_thread_stack_bytes{0};
constinit std::atomic<uint64_t> g_threads_started_before_attach{0};
__thread uint64_t tls_seen_stack_plus_one [[gnu::tls_model("initial-exec")]] = 0;
}  // namespace detail

}  // namespace gometrics::agent

// The publisher thread's tid, exported: gometrics-cli reads it so as never to
// borrow that thread for a call into the agent (attach.cpp's entry points).
extern "C" {
[[gnu::visibility("default")]] constinit std::atomic<int> gometrics_publisher_tid{0};
}

namespace gometrics::agent {

using namespace detail;

ThreadCounts thread_counts() noexcept {
    // exited before started: a thread is counted out after it was counted
    // in, so started >= exited in what we return.
    const uint64_t exited = g_threads_exited.load(std::memory_order_acquire);
    const uint64_t stack = g_thread_stack_bytes.load(std::memory_order_acquire);
    const uint64_t started = g_threads_started.load(std::memory_order_acquire);
    return {started, exited, stack, g_threads_started_before_attach.load(std::memory_order_relaxed)};
}

int publisher_tid() noexcept { return gometrics_publisher_tid.load(std::memory_order_relaxed); }
void set_publisher_tid(int tid) noexcept { gometrics_publisher_tid.store(tid, std::memory_order_relaxed); }

namespace detail {

void threads_after_fork() noexcept {
    // The child has one thread. Keep the cumulative count of threads
    // started (as the heap keeps its cumulative counts), and count every
    // other thread as gone.
    const uint64_t started = g_threads_started.load(std::memory_order_relaxed);
    const bool seen = tls_seen_stack_plus_one != 0;
    g_threads_exited.store(seen ? started - 1 : started, std::memory_order_relaxed);
    g_thread_stack_bytes.store(seen ? tls_seen_stack_plus_one - 1 : 0, std::memory_order_relaxed);
    gometrics_publisher_tid.store(0, std::memory_order_relaxed);  // the parent's; ours starts later
}

}  // namespace detail

}  // namespace gometrics::agent
