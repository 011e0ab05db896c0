// Block sizes on jemalloc without asking it (jemalloc_sizes.cpp): its
// malloc_usable_size costs about 40 instructions a call, more than the rest
// of a hook (tcmalloc's 30, behind two more calls). Preloaded, linked or switched to (GOMETRICS_ALLOCATOR), the
// hooks of a thread counting for another allocator (kSlowSlot, slots.h) use:
// - malloc(n), calloc: a table of the usable size jemalloc gives a request
//   of n bytes (its nallocx), built and checked when the first such thread
//   claims its slot; g_request_limit says it is there. tcmalloc (nallocx)
//   and mimalloc (mi_good_size) get the table too, and ask at free.
// - free: jemalloc's own per-thread count of the bytes the thread freed
//   ("thread.deallocatedp"), read around the real call. Hooks that run in
//   between on the same thread (a signal handler's, the agent's own work
//   inside a lock hook) add what they saw move to
//   tls_words.freed_attributed, so each window takes only its own bytes.
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
// [(n + 7) / 8]: the usable size of malloc(n) on jemalloc, tcmalloc or
// mimalloc (their nallocx or mi_good_size, checked against what malloc
// gives); complete before any thread's tls_words.freed is set.
extern uint16_t g_request_usable[jemalloc::kTableMax / 8 + 1];
// Requests up to this many bytes are in g_request_usable: 0 until the table
// is built and checked (never, on an allocator without a size function).
extern size_t g_request_limit;
// The allocator could not size its blocks yet when the table was to be
// checked (tcmalloc before its constructor): the next asked allocation
// calls set_up_other_thread again.
extern bool g_size_table_retry;
// The calling thread claims a slot for another allocator (slots.cpp, cold):
// sets tls_words.freed when jemalloc's counters serve (the first such claim
// builds and checks the table).
void set_up_other_thread() noexcept;
// GOMETRICS_ALLOCATOR=jemalloc (allocator_switch.cpp), the only thread:
// the private jemalloc's functions, checked and used from now on.
using NallocxFn = size_t (*)(size_t, int);
using GoodSizeFn = size_t (*)(size_t);
using NameToMibFn = int (*)(const char*, size_t*, size_t*);
using ByMibFn = int (*)(const size_t*, size_t, void*, size_t*, void*, size_t);
void use_switched_jemalloc(NallocxFn nallocx, NameToMibFn name_to_mib, ByMibFn by_mib) noexcept;
// Resolution found a real malloc that is not glibc's (real.cpp): look up
// the size functions of the object that serves it (no call yet).
void find_size_functions(void* real_malloc) noexcept;
// In a forked child: a set-up another thread had under way never finishes.
void jemalloc_sizes_after_fork_child() noexcept;
}  // namespace detail

namespace jemalloc {

// A window over jemalloc's count of the bytes this thread freed: opened
// before the real call, closed after it, it gives the bytes freed in
// between less those a hook nested there attributed (and attributes them in
// turn). Each end reads the count and the attributed sum as a pair that a
// signal handler's hook did not split: a hook landing between the two loads
// moves both (its own free, then its attribution), so the end reads again
// when the first of them moved meanwhile. A split pair would take the
// handler's bytes from this block's, or count them twice.
// (Loops, not calls out of line: a call would make the caller keep more
// registers across it than the loads cost.)
[[gnu::always_inline]] inline uint64_t open_window(const uint64_t* freed) noexcept {
    uint64_t attributed = detail::tls_words.freed_attributed, count;
    for (;;) {
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        count = __atomic_load_n(freed, __ATOMIC_RELAXED);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        const uint64_t again = detail::tls_words.freed_attributed;
        if (again == attributed) [[likely]]
            return count - attributed;
        attributed = again;
    }
}
[[gnu::always_inline]] inline uint64_t close_window(const uint64_t* freed, uint64_t opened) noexcept {
    uint64_t count = __atomic_load_n(freed, __ATOMIC_RELAXED), attributed;
    for (;;) {
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        attributed = detail::tls_words.freed_attributed;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        const uint64_t again = __atomic_load_n(freed, __ATOMIC_RELAXED);
        if (again == count) [[likely]]
            break;
        count = again;
    }
    const uint64_t bytes = count - attributed - opened;
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
    const uint64_t opened = open_window(freed);
    if constexpr (std::is_void_v<decltype(call())>) {
        call();
        close_window(freed, opened);
    } else {
        auto r = call();
        close_window(freed, opened);
        return r;
    }
}

}  // namespace jemalloc
}  // namespace gometrics::agent

#pragma GCC visibility pop
