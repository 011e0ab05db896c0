// Per-thread counters: the only state the hot path writes.
//
// Each thread that enters a hook claims a ThreadSlot (cold path, lock-free)
// and keeps a pointer to it in initial-exec TLS. Only that thread writes the
// slot's counters, with a relaxed load and a release store (no lock-prefixed
// read-modify-write); the publisher reads them with acquire loads. When the
// thread exits its slot is retired with its counts intact and becomes part
// of the retired total; a later thread may claim it and keep counting on top,
// so the sum over all slots is always the process total and never goes down.
//
// Frees that arrive after a thread's exit destructor (glibc's thread freeres,
// late TLS destructors) go to the shared `orphans` slot with atomic RMWs:
// rare, and counted without resurrecting a slot.
#pragma once

#include <atomic>
#include <cstdint>

#include "buckets.h"

#pragma GCC visibility push(hidden)  // see real.h

namespace gometrics::agent {

struct alignas(64) ThreadSlot {
    // Slot bookkeeping (cold): state is kFree, kLive or kRetired.
    std::atomic<uint32_t> state;
    int32_t tid;                    // owner's tid while live
    std::atomic<ThreadSlot*> next;  // all slots ever created, a push-only list

    // Heap (heap collector). Bytes are usable sizes; objects are the sums of
    // the size buckets (one counter less on the hot path).
    alignas(64) uint64_t alloc_bytes, free_bytes;
    // Heap profiling (owner only, never published): bytes left until the
    // next sample, and the thread's random state (agent/profile.cpp).
    int64_t sample_countdown;
    uint64_t sample_rng;
    uint64_t alloc_by_size[buckets::kSizeCounts];
    uint64_t free_by_size[buckets::kSizeCounts];

    // Lock contention (sync collector): only contended acquisitions.
    alignas(64) uint64_t contentions, wait_ns;
    uint64_t wait_by_time[buckets::kTimeCounts];
};

enum SlotState : uint32_t { kFree = 0, kLive = 1, kRetired = 2 };

// Owner-only increment. Single writer, so no lock prefix is needed; the
// store must still be ordered before anything the thread does next (handing
// the block to another thread that frees it; see the sum order in
// collectors/heap.cpp). On x86-64 it is one `add` to memory: TSO orders it
// as a release store, and a signal handler that allocates on this thread
// cannot land between a load and a store and lose a count (PITFALLS 18).
// Elsewhere: a relaxed load and a release store.
[[gnu::always_inline]] inline void bump(uint64_t& counter, uint64_t v) noexcept {
#if defined(__x86_64__)
    asm volatile("addq %1, %0" : "+m"(counter) : "er"(v) : "memory");
#else
    std::atomic_ref<uint64_t> c(counter);
    c.store(c.load(std::memory_order_relaxed) + v, std::memory_order_release);
#endif
}
// Shared-slot increment (orphans): rare, so an atomic RMW is fine.
inline void bump_shared(uint64_t& counter, uint64_t v) noexcept {
    std::atomic_ref<uint64_t>(counter).fetch_add(v, std::memory_order_acq_rel);
}
inline uint64_t load(const uint64_t& counter) noexcept {
    return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(counter)).load(std::memory_order_acquire);
}

namespace detail {
// TLS of the calling thread: a slot, or one of these markers. Initial-exec,
// one word: no __tls_get_addr, no allocation, no static-TLS pressure.
inline constexpr uintptr_t kNoSlot = 0;       // not claimed yet
inline constexpr uintptr_t kExited = 1;       // the thread's exit destructor ran
inline constexpr uintptr_t kAgentThread = 2;  // the agent's own work: never counted
inline constexpr uintptr_t kMaxMarker = 2;

// __thread, not thread_local: no TLS wrapper call on each access.
extern __thread ThreadSlot* tls_slot [[gnu::tls_model("initial-exec")]];
extern ThreadSlot g_orphans;

inline ThreadSlot* marker(uintptr_t m) noexcept { return reinterpret_cast<ThreadSlot*>(m); }

// Cold path of current_slot(): claims a slot, or returns the orphan slot or
// nullptr (agent thread, or the reentrancy guard is up).
[[gnu::noinline, gnu::cold]] ThreadSlot* slow_slot() noexcept;
}  // namespace detail

// The slot the calling thread counts into; nullptr: do not count.
[[gnu::always_inline]] inline ThreadSlot* current_slot() noexcept {
    ThreadSlot* s = detail::tls_slot;
    if (reinterpret_cast<uintptr_t>(s) > detail::kMaxMarker) [[likely]]
        return s;
    return detail::slow_slot();
}

inline bool is_orphans(const ThreadSlot* s) noexcept { return s == &detail::g_orphans; }

// Marks the calling thread as the agent's own (publisher): never counted.
void mark_agent_thread() noexcept;

// Reentrancy guard for the agent's own work on an application thread:
// while one is alive, hooks on this thread forward without counting.
class Guard {
public:
    Guard() noexcept : saved_(detail::tls_slot) { detail::tls_slot = detail::marker(detail::kAgentThread); }
    ~Guard() { detail::tls_slot = saved_; }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

private:
    ThreadSlot* saved_;
};

// Publisher side: visit every slot ever created, orphans included.
template <class F>
void for_each_slot(F&& f);

// After fork, in the child: every live slot belongs to a thread that does
// not exist here (or to the forking thread, which claims one afresh): retire
// them all, and make the calling thread's next hook take the cold path.
void retire_slots_after_fork() noexcept;

// Number of slots (memory the agent holds for them, for /memory/classes/other).
uint64_t slot_bytes() noexcept;

namespace detail {
extern std::atomic<ThreadSlot*> g_slot_list;
// Set in a forked child: the next slot claimed (the child's first counted
// call) runs g_restart_hook (agent.cpp restarts publication there), outside
// the atfork handler.
extern std::atomic<bool> g_restart_pending;
extern void (*g_restart_hook)() noexcept;
}

template <class F>
void for_each_slot(F&& f) {
    f(static_cast<const ThreadSlot&>(detail::g_orphans));
    for (ThreadSlot* s = detail::g_slot_list.load(std::memory_order_acquire); s;
         s = s->next.load(std::memory_order_acquire))
        f(static_cast<const ThreadSlot&>(*s));
}

}  // namespace gometrics::agent

#pragma GCC visibility pop
