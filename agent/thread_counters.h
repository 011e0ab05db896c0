// The allocator's own per-thread byte counters (jemalloc's thread.allocatedp
// and thread.deallocatedp), where they exist: the hooks read a block's usable
// size from how far they moved, instead of asking the allocator for it (a
// size lookup of 20 to 40 instructions per call on jemalloc).
#pragma once

#include <cstdint>

#pragma GCC visibility push(hidden)

namespace gometrics::agent {

struct ThreadSlot;

// Start-up, on the only thread, after the allocator switch: looks for
// mallctl beside the real malloc (or the switched-to jemalloc's) and turns
// the counters on only if an allocation and a free really move them by the
// block's usable size.
void thread_counters_init() noexcept;

// A thread claimed slot s (slots.cpp): its counters' addresses, if on.
void thread_counters_claim(ThreadSlot* s) noexcept;
// The same for the slot a TLS word names, if any (the constructor's thread,
// whose slot predates thread_counters_init()).
void thread_counters_claim_word(ThreadSlot* word) noexcept;

// jemalloc's thread.allocated of the slot's thread, when s->allocated
// was not seen since work the hooks do not count (start, the agent's own
// allocations): the next allocation asks for its size once instead.
inline constexpr uint64_t kCountersUnprimed = ~uint64_t{0};

}  // namespace gometrics::agent

#pragma GCC visibility pop
