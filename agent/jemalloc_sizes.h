// Block sizes on jemalloc without asking it (jemalloc_sizes.cpp): its
// malloc_usable_size costs about 40 instructions a call, more than the rest
// of a hook. Preloaded, linked or switched to (GOMETRICS_ALLOCATOR), the
// hooks of a thread counting for another allocator (kSlowSlot, slots.h) use:
// - malloc(n), calloc: a table of the usable size jemalloc gives a request
//   of n bytes (its nallocx), built and checked when the first such thread
//   claims its slot; 0 where the size must be asked (another allocator, n 0,
//   n beyond the table).
// - free: jemalloc's own per-thread count of the bytes the thread freed
//   ("thread.deallocatedp"), read around the real call. Hooks that run in
//   between on the same thread (a signal handler's, the agent's own work
//   inside a lock hook) add what they saw move to tls_words.freed_attributed, so
//   each window takes only its own bytes (unattributed_freed()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "slots.h"

#pragma GCC visibility push(hidden)  // see real.h

namespace gometrics::agent {

namespace jemalloc {
// Requests up to this many bytes are in the table.
inline constexpr size_t kTableMax = 16384;
// A request the table does not cover (aligned, realloc): the size is asked.
inline constexpr size_t kUnknown = ~size_t{0};
}  // namespace jemalloc

namespace detail {
// [(n + 7) / 8]: the usable size of jemalloc's malloc(n), or 0.
extern uint16_t g_request_usable[jemalloc::kTableMax / 8 + 1];
// The calling thread claims a slot for another allocator (slots.cpp, cold):
// sets tls_words.freed when jemalloc's counters serve (the first such claim
// builds and checks the table).
void set_up_other_thread() noexcept;
// GOMETRICS_ALLOCATOR=jemalloc (allocator_switch.cpp), the only thread:
// the private jemalloc's functions, checked and used from now on.
using NallocxFn = size_t (*)(size_t, int);
using NameToMibFn = int (*)(const char*, size_t*, size_t*);
using ByMibFn = int (*)(const size_t*, size_t, void*, size_t*, void*, size_t);
void use_switched_jemalloc(NallocxFn nallocx, NameToMibFn name_to_mib, ByMibFn by_mib) noexcept;
// Resolution found a real malloc that is not glibc's (real.cpp): look up
// jemalloc's functions in the object that serves it (no call yet).
void find_jemalloc_next(void* real_malloc) noexcept;
// In a forked child: a set-up another thread had under way never finishes.
void jemalloc_sizes_after_fork_child() noexcept;
}  // namespace detail

namespace jemalloc {

// The usable size of the block malloc(n) returned, or 0: ask.
[[gnu::always_inline]] inline size_t request_usable(size_t n) noexcept {
    return n <= kTableMax ? detail::g_request_usable[(n + 7) / 8] : 0;
}

// jemalloc's freed bytes of this thread less those already attributed, read
// with no hook of this thread between the two loads (a signal handler runs to
// completion: seeing the attributed sum unchanged after the count proves it).
[[gnu::always_inline]] inline uint64_t unattributed_freed(const uint64_t* freed) noexcept {
    for (;;) {
        const uint64_t attributed = detail::tls_words.freed_attributed;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        const uint64_t count = __atomic_load_n(freed, __ATOMIC_RELAXED);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        if (detail::tls_words.freed_attributed == attributed) [[likely]]
            return count - attributed;
    }
}

// Bytes freed in a window that began at unattributed_freed() == before:
// attributed (for any enclosing window) and returned.
[[gnu::always_inline]] inline uint64_t attribute_freed(const uint64_t* freed, uint64_t before) noexcept {
    const uint64_t bytes = unattributed_freed(freed) - before;
    bump(detail::tls_words.freed_attributed, bytes);
    return bytes;
}

// Runs call(), which may free through jemalloc without the free hook's
// window (a sized delete, realloc, the slow path), attributing what it
// freed. Returns what call() returns.
template <class F>
[[gnu::always_inline]] inline auto attributing(F&& call) noexcept {
    const uint64_t* freed = detail::tls_words.freed;
    if (!freed) return call();
    const uint64_t before = unattributed_freed(freed);
    if constexpr (std::is_void_v<decltype(call())>) {
        call();
        attribute_freed(freed, before);
    } else {
        auto r = call();
        attribute_freed(freed, before);
        return r;
    }
}

}  // namespace jemalloc
}  // namespace gometrics::agent

#pragma GCC visibility pop
