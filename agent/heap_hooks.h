// What the malloc hooks (hooks_malloc.cpp) lend to other code: the common
// cases of malloc's and free's hooks, inline, for the hooks themselves and for
// an attached agent's wrappers (attach.cpp), which fold them in rather than
// call the hooks; and the counting that operator new and delete of an
// allocator that serves them itself need (hooks_new.cpp).
#pragma once

#include <cstddef>

#include "buckets.h"
#include "jemalloc_sizes.h"
#include "profile.h"
#include "real.h"
#include "slots.h"

#pragma GCC visibility push(hidden)

namespace gometrics::agent {

// Counts p, if any, as malloc's hook counts its result, for a request of
// `request` bytes when known (jemalloc's table, jemalloc_sizes.h); returns p.
void* count_allocation(void* p, size_t request = ~size_t{0}) noexcept;
// Counts the coming release of p, if any, as free's hook does.
void count_release(void* p) noexcept;
// Counts the release of `usable` bytes on the calling thread's slot for
// another allocator (tls_words.slot, with the kSlowSlot marker).
void count_release_other(size_t usable) noexcept;

namespace hooks {

// The out-of-line paths (hooks_malloc.cpp).
[[gnu::noinline, gnu::cold]] void* small_reached(ThreadSlot* s, void* p, size_t usable) noexcept;
[[gnu::noinline]] void* count_alloc_slow(void* p) noexcept;
[[gnu::noinline]] void* count_heap_alloc(ThreadSlot* s, void* p, size_t head) noexcept;
[[gnu::noinline]] void* count_alloc_asked(void* p) noexcept;
[[gnu::noinline]] void* count_alloc_sized(void* p, size_t usable) noexcept;
[[gnu::noinline, gnu::cold]] void* other_small_reached(void* p, size_t usable) noexcept;
[[gnu::noinline]] void free_slow(void* p) noexcept;
[[gnu::noinline]] void free_heap_chunk(ThreadSlot* s, void* p, size_t head) noexcept;
[[gnu::noinline]] void free_other_asked(void* p) noexcept;
[[gnu::noinline]] void free_sized_by_window(void* p, uint64_t opened) noexcept;

// A slot in TLS, not a marker: the inline path applies.
[[gnu::always_inline]] inline bool has_slot(ThreadSlot* s) noexcept {
    return reinterpret_cast<uintptr_t>(s) > detail::kMaxMarker;
}

// Counts an allocation of a small size (e: its small_entry) and decrements
// its call-out countdown: whether that reached 0. On x86-64 an `add` (as
// bump) and a `sub` to memory, addressed from the slot and size alike, and a
// branch on the flags of the `sub`: GCC would load, decrement, store and
// test a plain `--x <= 0`. The countdown is the owner's alone, and a signal
// handler landing between the two only shifts the schedule by one call.
[[gnu::always_inline]] inline bool count_small(SmallSize* e) noexcept {
#if defined(__x86_64__)
    asm goto("addq $1, %0\n\tsubq $1, %1\n\tjle %l[due]"
             : "+m"(e->count[kAllocs]), "+m"(e->call_left) : : "cc", "memory" : due);
    return false;
due:
    [[unlikely]] return true;
#else
    bump(e->count[kAllocs], 1);
    return --e->call_left <= 0;
#endif
}

// Counts the allocation p of `usable` bytes on the owner's slot, and
// schedules heap samples: a small size counts down its allocations to the
// next call-out (the next sample, or a poll); other sizes count down bytes.
// e: the size's small_entry.
[[gnu::always_inline]] inline void* count_small_alloc(ThreadSlot* s, SmallSize* e, void* p, size_t usable) noexcept {
    if (count_small(e)) [[unlikely]]
        return small_reached(s, p, usable);
    return p;
}

// An allocation on a thread counting for another allocator than glibc's,
// of a request of n bytes (or jemalloc::kUnknown): the short way, without
// the slow path's questions. On jemalloc a request the table covers is
// counted here, without a call; a bootstrap block never comes with one (the
// thread has a slot, so the real functions were resolved before, and only
// their stubs hand those out).
[[gnu::always_inline]] inline void* count_alloc_other(void* p, size_t n) noexcept {
    // Not jemalloc, or not a request the table knows (kUnknown is beyond any).
    if (n > __atomic_load_n(&detail::g_request_limit, __ATOMIC_ACQUIRE)) [[unlikely]]
        return count_alloc_asked(p);
    detail::ThreadWords& w = detail::tls_words;
    const size_t usable = detail::g_request_usable[(n + 7) / 8];
    if (!buckets::is_small(usable)) [[unlikely]]
        return count_alloc_sized(p, usable);
    SmallSize* e = small_entry(w.slot, usable);
    if (count_small(e)) [[unlikely]]
        return other_small_reached(p, usable);
    w.last_counted = p;
    return p;
}

// What an attached agent does with a block once counted (attach.cpp marks
// it); the preloaded hooks do nothing. fast() takes the result of the
// inline path, so a program's thread with a slot; slow() that of any other.
struct NoMark {
    static void* fast(void* p) noexcept { return p; }
    static void* slow(void* p) noexcept { return p; }
};

// Counts p, not null, allocated by glibc on a thread with slot s.
template <class Mark = NoMark>
[[gnu::always_inline]] inline void* counted_on_slot(ThreadSlot* s, void* p) noexcept {
    const size_t head = glibc::chunk_head(p);
    if (!glibc::small_chunk(head)) [[unlikely]]
        return Mark::slow(glibc::heap_chunk(head) ? count_heap_alloc(s, p, head) : count_alloc_slow(p));
    const size_t chunk = glibc::small_chunk_size(head);
    return Mark::fast(count_small_alloc(s, small_entry_of_chunk(s, chunk), p, glibc::small_chunk_usable(head)));
}

// Counts the allocation p, if any, made for a request of n bytes (or
// jemalloc::kUnknown: only malloc and calloc know it), and returns it.
template <class Mark = NoMark>
[[gnu::always_inline]] inline void* counted(void* p, size_t n = jemalloc::kUnknown) noexcept {
    if (!p) [[unlikely]]
        return p;
    ThreadSlot* s = detail::tls_slot;
    if (!has_slot(s)) [[unlikely]]
        return Mark::slow(s == detail::marker(detail::kSlowSlot) ? count_alloc_other(p, n) : count_alloc_slow(p));
    return counted_on_slot<Mark>(s, p);
}

// free on a thread counting for another allocator than glibc's, the short
// way. Anything the slow path must look at (a sample or a bootstrap block,
// which the live filter both flags, a block a counted operator delete is
// releasing) goes there. On jemalloc the size is what its count of the
// thread's freed bytes moved by (jemalloc_sizes.h), counted once the block
// is gone; elsewhere it is asked. After a switch a block of glibc's is
// routed there by the real free, and sized by it (allocator_switch.cpp).
[[gnu::always_inline]] inline void free_other(void* p) noexcept {
    detail::ThreadWords& w = detail::tls_words;
    if (profile::maybe_sampled(p)) [[unlikely]]
        return free_slow(p);
    if (p == w.counted_free) [[unlikely]] {  // as free_slow would: the delete counted it
        w.counted_free = nullptr;
        return resolved_fn<&RealFunctions::free>()(p);
    }
    // Whatever was counted last, a free came after it: a wrapped operator
    // new that returns it now did not reach malloc's hook (hooks_new.cpp).
    w.last_counted = nullptr;
    if (!w.freed) [[unlikely]]
        return free_other_asked(p);
    return free_sized_by_window(p, jemalloc::open_window(w.freed));
}

// free's hook, for a block that is not null.
[[gnu::always_inline]] inline void free_counted(void* p) noexcept {
    ThreadSlot* s = detail::tls_slot;
    if (has_slot(s)) [[likely]] {
        const size_t head = glibc::chunk_head(p);
        if (glibc::small_chunk(head)) [[likely]] {  // never a sample (profile.h)
            bump(small_entry_of_chunk(s, glibc::small_chunk_size(head))->count[kFrees], 1);
            return resolved_fn<&RealFunctions::free>()(p);
        }
        if (glibc::heap_chunk(head)) return free_heap_chunk(s, p, head);
    } else if (s == detail::marker(detail::kSlowSlot)) {
        return free_other(p);
    }
    free_slow(p);
}

}  // namespace hooks
}  // namespace gometrics::agent

#pragma GCC visibility pop
