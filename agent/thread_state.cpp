// Thread lifecycle state shared by the pthread_create wrapper and the
// collectors; see threads.h.
#include "thread_state.h"

#include <cstddef>

namespace gometrics::agent {

namespace detail {
constinit std::atomic<uint64_t> g_threads_started{0}, g_threads_exited{0}, g_thread_stack_bytes{0};
__thread uint64_t tls_seen_stack_plus_one [[gnu::tls_model("initial-exec")]] = 0;
}  // namespace detail

namespace {

using namespace detail;

constinit std::atomic<int> g_publisher_tid{0};

// A bounded multi-producer queue (Vyukov's): each cell carries a sequence
// number saying whose turn it is. A producer claims position p when its
// cell's sequence equals p, fills it, then publishes p + 1 (release; the
// consumer's acquire load of it is the partner). The consumer takes p when
// the sequence is p + 1 and hands the cell back with p + kCells. Cells hold
// their sequence minus their index, so static zero-initialisation is the
// empty queue; no allocation, nothing to construct.
constexpr size_t kCells = 2048;
struct Cell {
    std::atomic<uint64_t> seq_minus_index;
    ExitedSchedstat record;
};
constinit Cell g_cells[kCells];
alignas(64) constinit std::atomic<uint64_t> g_enqueue{0};
alignas(64) constinit uint64_t g_dequeue = 0;  // publisher only

uint64_t seq_of(size_t i) { return g_cells[i].seq_minus_index.load(std::memory_order_acquire) + i; }

}  // namespace

ThreadCounts thread_counts() noexcept {
    // exited before started: a thread is counted out after it was counted
    // in, so started >= exited in what we return.
    const uint64_t exited = g_threads_exited.load(std::memory_order_acquire);
    const uint64_t stack = g_thread_stack_bytes.load(std::memory_order_acquire);
    const uint64_t started = g_threads_started.load(std::memory_order_acquire);
    return {started, exited, stack};
}

int publisher_tid() noexcept { return g_publisher_tid.load(std::memory_order_relaxed); }
void set_publisher_tid(int tid) noexcept { g_publisher_tid.store(tid, std::memory_order_relaxed); }

bool push_exited_schedstat(const ExitedSchedstat& r) noexcept {
    uint64_t pos = g_enqueue.load(std::memory_order_relaxed);
    for (;;) {
        const size_t i = pos % kCells;
        const auto dif = static_cast<int64_t>(seq_of(i) - pos);
        if (dif == 0) {
            if (g_enqueue.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
                g_cells[i].record = r;
                g_cells[i].seq_minus_index.store(pos + 1 - i, std::memory_order_release);
                return true;
            }
        } else if (dif < 0) {
            return false;  // full
        } else {
            pos = g_enqueue.load(std::memory_order_relaxed);
        }
    }
}

bool pop_exited_schedstat(ExitedSchedstat& r) noexcept {
    const size_t i = g_dequeue % kCells;
    if (seq_of(i) != g_dequeue + 1) return false;  // empty, or the producer is still filling it
    r = g_cells[i].record;
    g_cells[i].seq_minus_index.store(g_dequeue + kCells - i, std::memory_order_release);
    ++g_dequeue;
    return true;
}

namespace detail {

void threads_after_fork() noexcept {
    // The child has one thread. Keep the cumulative count of threads
    // started (as the heap keeps its cumulative counts), and count every
    // other thread as gone.
    const uint64_t started = g_threads_started.load(std::memory_order_relaxed);
    const bool seen = tls_seen_stack_plus_one != 0;
    g_threads_exited.store(seen ? started - 1 : started, std::memory_order_relaxed);
    g_thread_stack_bytes.store(seen ? tls_seen_stack_plus_one - 1 : 0, std::memory_order_relaxed);
    g_publisher_tid.store(0, std::memory_order_relaxed);  // the parent's; ours starts later
    // A producer may have been stopped mid-push by the fork: start empty.
    for (size_t i = 0; i < kCells; ++i) g_cells[i].seq_minus_index.store(0, std::memory_order_relaxed);
    g_enqueue.store(0, std::memory_order_relaxed);
    g_dequeue = 0;
}

}  // namespace detail

}  // namespace gometrics::agent
