// The malloc family, interposed. Each hook is: forward to the real function,
// then count the result in the calling thread's slot (usable sizes, so that
// live = allocs - frees holds exactly). Return values and errno are the real
// function's: counting never touches errno and never fails.
//
// The common case is counted inline: a thread whose TLS holds a slot (which
// implies glibc's chunks, slots.h) and a small chunk (real.h), counted with
// one test and one increment. Everything else (large blocks, another
// allocator, a thread with no slot, the bootstrap arena, sampled blocks)
// is a call out of line. So malloc needs no stack frame beyond the real
// call, free ends in a tail call, and neither checks whether the real
// functions are resolved: malloc's starts as a resolving stub, and a thread
// has a slot only once they are. The inline part is in heap_hooks.h, shared
// with an attached agent's wrappers (attach.cpp).
#include <errno.h>

#include <cstring>

#include "buckets.h"
#include "heap_hooks.h"
#include "jemalloc_sizes.h"
#include "profile.h"
#include "publisher.h"
#include "real.h"
#include "slots.h"

#define GOMETRICS_EXPORT extern "C" [[gnu::visibility("default")]]

namespace gometrics::agent::hooks {
namespace {

// s is still the calling thread's slot. It is not in a forked child that a
// signal handler made while the thread was inside a hook: the hook resumes
// with its parent's slot, whose blank page (SegmentWriter::abandon) must
// not be taken for a schedule.
[[gnu::always_inline]] inline bool still_current(const ThreadSlot* s) noexcept {
    return s == detail::tls_slot || (detail::tls_slot == detail::marker(detail::kSlowSlot) && s == detail::tls_words.slot);
}

using R = RealFunctions;

[[gnu::always_inline]] inline bool ready() noexcept {
    return detail::g_resolve_state.load(std::memory_order_acquire) == 2;
}

// Cold: the first call resolves the real functions; calls made while that
// is under way (dlsym's own calloc) are served from the bootstrap arena.
[[gnu::noinline, gnu::cold]] bool bootstrap_or_resolve() noexcept {
    if (resolving()) return true;
    detail::resolve_real();
    return false;
}

// A hook of the rarer kind called before the real functions are resolved:
// serve it from the bootstrap arena while dlsym runs (boot), else resolve
// and go on (call).
template <class Boot, class Call>
[[gnu::noinline, gnu::cold]] auto unresolved(Boot boot, Call call) noexcept {
    return bootstrap_or_resolve() ? boot() : call();
}

// An allocation or a free of `usable` bytes, on a slot the caller owns.
[[gnu::always_inline]] inline void record(ThreadSlot* s, HeapSide side, size_t usable) noexcept {
    if (buckets::is_small(usable)) [[likely]] {
        bump(small_counter(s, usable, side), 1);
    } else {
        bump(s->other_bytes[side], usable);
        bump(s->other_by_size[buckets::size_index(usable)][side], 1);
    }
}

// The same on the shared orphan slot (threads past their exit destructor).
void record_orphan(HeapSide side, size_t usable) noexcept {
    ThreadSlot* s = &detail::g_orphans;
    if (buckets::is_small(usable)) {
        bump_shared(small_counter(s, usable, side), 1);
    } else {
        bump_shared(s->other_bytes[side], usable);
        bump_shared(s->other_by_size[buckets::size_index(usable)][side], 1);
    }
}

// While a lazy publisher waits, the hooks call out at least every so many
// bytes of a size (or of the other sizes) so that a reader's request is
// noticed (publisher_poll); the samples keep their own schedule.
constexpr uint64_t kPollBytes = 256 * 1024;

[[gnu::noinline, gnu::cold]] void* countdown_crossed(ThreadSlot* s, void* p, size_t usable) noexcept {
    if (!still_current(s)) [[unlikely]]
        return p;
    publisher_poll();
    profile::countdown_crossed(s, p, usable);
    if (publisher_pending() && s->sample_countdown > int64_t{kPollBytes}) {
        s->sample_beyond = s->sample_countdown - int64_t{kPollBytes};
        s->sample_countdown = kPollBytes;
    }
    return p;
}

[[gnu::always_inline]] inline void* count_alloc(ThreadSlot* s, void* p, size_t usable) noexcept {
    if (buckets::is_small(usable)) [[likely]]
        return count_small_alloc(s, small_entry(s, usable), p, usable);
    bump(s->other_bytes[kAllocs], usable);
    bump(s->other_by_size[buckets::size_index(usable)][kAllocs], 1);
    if ((s->sample_countdown -= static_cast<int64_t>(usable)) < 0) [[unlikely]]
        return countdown_crossed(s, p, usable);
    return p;
}

// p is being freed: a block the slow path counted last is no longer the one
// a wrapped operator new may hand out without our count (hooks_new.cpp).
[[gnu::always_inline]] inline void forget_last_counted(void* p) noexcept {
    if (p == detail::tls_words.last_counted) [[unlikely]]
        detail::tls_words.last_counted = nullptr;
}

// Counts the free of a block of `usable` bytes on s, the caller's slot.
void count_free_on(ThreadSlot* s, size_t usable) noexcept {
    if (is_orphans(s)) [[unlikely]]
        record_orphan(kFrees, usable);
    else
        record(s, kFrees, usable);
}

void count_free(size_t usable) noexcept {
    if (ThreadSlot* s = current_slot()) count_free_on(s, usable);  // else the agent's own
}

}  // namespace

// ---- The out-of-line paths (heap_hooks.h).

// The heap sampler's cold paths (profile.h), and the lazy publisher's poll.
void* small_reached(ThreadSlot* s, void* p, size_t usable) noexcept {
    if (!still_current(s)) [[unlikely]]
        return p;
    publisher_poll();
    p = profile::small_reached(s, p, usable);
    if (publisher_pending() && usable) {
        const auto soon = static_cast<int64_t>((kPollBytes + usable - 1) / usable);
        if (small_call_left(s, usable) > soon) small_call_left(s, usable) = soon;
    }
    return p;
}

// Any allocation but the common case. A bootstrap block (handed out while
// resolving) is not counted: its free is not either.
void* count_alloc_slow(void* p) noexcept {
    if (is_bootstrap(p)) [[unlikely]]
        return p;
    ThreadSlot* s = current_slot();
    if (!s) return p;  // the agent's own
    const size_t usable = usable_size(p);
    if (is_orphans(s)) [[unlikely]]
        record_orphan(kAllocs, usable);
    else
        p = count_alloc(s, p, usable);  // a sample may have moved it
    // Last: asking the size or sampling may itself allocate (a counted
    // operator new, which resets the word).
    detail::tls_words.last_counted = p;
    return p;
}

// A glibc heap chunk beyond the small sizes, on the caller's slot: its
// usable size from the header, without the slow path's questions.
void* count_heap_alloc(ThreadSlot* s, void* p, size_t head) noexcept {
    return count_alloc(s, p, glibc::chunk_usable(head));
}

// An allocation on a thread counting for another allocator than glibc's
// (the slot in tls_words.slot), the size asked.
void* count_alloc_asked(void* p) noexcept {
    if (is_bootstrap(p)) [[unlikely]]
        return p;
    if (__atomic_load_n(&detail::g_size_table_retry, __ATOMIC_RELAXED)) [[unlikely]]
        detail::set_up_other_thread();
    p = count_alloc(detail::tls_words.slot, p, detail::asked_usable_size(p));
    detail::tls_words.last_counted = p;  // see count_alloc_slow
    return p;
}

// The same beyond the small sizes, with the size.
void* count_alloc_sized(void* p, size_t usable) noexcept {
    p = count_alloc(detail::tls_words.slot, p, usable);
    detail::tls_words.last_counted = p;  // see count_alloc_slow
    return p;
}

// A small size's count reached its call-out (small_reached) on that path.
void* other_small_reached(void* p, size_t usable) noexcept {
    p = small_reached(detail::tls_words.slot, p, usable);
    detail::tls_words.last_counted = p;  // see count_alloc_slow
    return p;
}

// free, other than the common case: a bootstrap block (never freed), a free
// before resolution, a large block, another allocator, a sampled block.
void free_slow(void* p) noexcept {
    if (is_bootstrap(p)) [[unlikely]]
        return;
    if (!ready()) [[unlikely]]
        if (bootstrap_or_resolve()) return;  // nothing to forward to yet: leak it
    // Before the real free, as the block is gone afterwards; the size only
    // for a slot (the agent's own frees need no malloc_usable_size of
    // another allocator).
    forget_last_counted(p);
    if (p == detail::tls_words.counted_free) [[unlikely]] {
        // Inside a counted operator delete, which counted it (a sample's
        // record too) and, on jemalloc, holds the window that sizes it
        // (hooks_new.cpp): only the real free here.
        detail::tls_words.counted_free = nullptr;
        return real_fn<&R::free>()(p);
    }
    ThreadSlot* s = current_slot();
    const size_t sampled = profile::maybe_sampled(p) ? profile::forget(p) : 0;
    if (s) count_free_on(s, sampled ? sampled : usable_size(p));
    jemalloc::attributing([p] { real_fn<&R::free>()(p); });
}

// free of a glibc heap chunk beyond the small sizes, on the caller's slot;
// a sample, or a block the operator new and delete hooks follow, goes the
// slow way.
void free_heap_chunk(ThreadSlot* s, void* p, size_t head) noexcept {
    if (profile::maybe_sampled(p) || p == detail::tls_words.last_counted || p == detail::tls_words.counted_free) [[unlikely]]
        return free_slow(p);
    record(s, kFrees, glibc::chunk_usable(head));
    resolved_fn<&R::free>()(p);
}

// free on a thread counting for another allocator than glibc's, asking
// the size before.
void free_other_asked(void* p) noexcept {
    record(detail::tls_words.slot, kFrees, detail::asked_usable_size(p));
    real_fn<&R::free>()(p);
}

// free_other's jemalloc way, once the window is open: the real free, then
// the count. Apart, so that only the window crosses the call.
void free_sized_by_window(void* p, uint64_t opened) noexcept {
    resolved_fn<&R::free>()(p);
    detail::ThreadWords& w = detail::tls_words;
    record(w.slot, kFrees, jemalloc::close_window(w.freed, opened));
}

namespace {

// realloc of a sampled block: a new block, a copy of the bytes the program
// had, and a free, counted as the hooks count them (realloc may always move
// a block). The free forgets the sample before the block goes, so a block
// that another thread or a signal handler gets at its address is never
// taken for it, in the counts or in malloc_usable_size. realloc(p, 0) frees
// p first. The hooks' own paths, not ::malloc and ::free: an attached
// agent's calls through its own GOT reach libc's, uncounted.
[[gnu::noinline, gnu::cold]] void* realloc_sampled(void* p, size_t usable, size_t n, bool zero_size,
                                                   auto&& real_call) noexcept {
    if (zero_size) {
        profile::forget(p);
        forget_last_counted(p);
        count_free(usable);
        return counted(jemalloc::attributing(real_call));  // glibc: frees p, NULL; jemalloc may give a block
    }
    void* q = counted(real_fn<&R::malloc>()(n), n);
    if (!q) return nullptr;  // p lives on, sampled; malloc set errno, as realloc's failure does
    std::memcpy(q, p, usable < n ? usable : n);
    free_slow(p);
    return q;
}

// realloc: a free of the old block plus an allocation of the new one,
// counted only for what really happened.
[[gnu::always_inline]] inline void* counted_realloc(void* p, size_t n, auto&& real_call) noexcept {
    if (!p) return counted(real_call());
    const bool zero_size = n == 0;
    if (profile::maybe_sampled(p)) [[unlikely]]
        if (const size_t sampled_usable = profile::sampled_size(p))
            return realloc_sampled(p, sampled_usable, n, zero_size, real_call);
    const size_t old_usable = usable_size(p);
    void* q = jemalloc::attributing(real_call);
    if (q || zero_size) {  // glibc: realloc(p, 0) frees p and returns NULL
        forget_last_counted(p);
        count_free(old_usable);
    }
    return counted(q);
}

// realloc of a bootstrap block: move it to the real heap, never free it.
[[gnu::noinline, gnu::cold]] void* realloc_from_bootstrap(void* p, size_t n) noexcept;

void* realloc_impl(void* p, size_t n) noexcept {
    if (is_bootstrap(p)) [[unlikely]]
        return realloc_from_bootstrap(p, n);
    auto call = [p, n] { return counted_realloc(p, n, [&] { return real_fn<&R::realloc>()(p, n); }); };
    if (!ready()) [[unlikely]]
        return unresolved([n] { return bootstrap_alloc(n, 16); }, call);  // p is null here: nothing real exists yet
    return call();
}

}  // namespace
}  // namespace gometrics::agent::hooks

namespace gometrics::agent {

using namespace hooks;

void* count_allocation(void* p, size_t request) noexcept { return counted(p, request); }

void count_release_other(size_t usable) noexcept { record(detail::tls_words.slot, kFrees, usable); }

void count_release(void* p) noexcept {
    if (!p || is_bootstrap(p)) [[unlikely]]
        return;
    forget_last_counted(p);
    const size_t sampled = profile::maybe_sampled(p) ? profile::forget(p) : 0;
    if (ThreadSlot* s = current_slot()) count_free_on(s, sampled ? sampled : usable_size(p));
}

}  // namespace gometrics::agent

using namespace gometrics::agent;
using namespace gometrics::agent::hooks;

namespace {
// Another allocator's thread (kSlowSlot): as counted() would, from there.
[[gnu::noinline]] void* malloc_other(size_t n) noexcept {
    void* p = resolved_fn<&R::malloc>()(n);  // the thread has a slot
    return p ? count_alloc_other(p, n) : p;
}
[[gnu::noinline]] void* malloc_without_slot(size_t n) noexcept { return counted(real_fn<&R::malloc>()(n), n); }
}  // namespace

// The slot first: with one, the real malloc is glibc's and resolved, and
// nothing but the slot need live across the call.
GOMETRICS_EXPORT void* malloc(size_t n) noexcept {
    ThreadSlot* s = detail::tls_slot;
    if (!has_slot(s)) [[unlikely]]
        return s == detail::marker(detail::kSlowSlot) ? malloc_other(n) : malloc_without_slot(n);
    void* p = resolved_fn<&R::malloc>()(n);
    if (!p) [[unlikely]]
        return p;
    return counted_on_slot(s, p);
}

GOMETRICS_EXPORT void free(void* p) noexcept {
    if (!p) [[unlikely]]
        return;
    free_counted(p);
}

// A block means n * size did not overflow.
GOMETRICS_EXPORT void* calloc(size_t n, size_t size) noexcept {
    return counted(real_fn<&R::calloc>()(n, size), n * size);
}

GOMETRICS_EXPORT void* realloc(void* p, size_t n) noexcept { return realloc_impl(p, n); }

// What glibc's reallocarray is: realloc of the product, ENOMEM when it
// overflows. Forwarding to it would count twice, as it calls realloc through
// the PLT, into our hook.
GOMETRICS_EXPORT void* reallocarray(void* p, size_t n, size_t size) noexcept {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) [[unlikely]] {
        errno = ENOMEM;
        return nullptr;
    }
    return realloc_impl(p, total);
}

GOMETRICS_EXPORT int posix_memalign(void** out, size_t align, size_t n) noexcept {
    auto call = [=] {
        const int rc = real_fn<&R::posix_memalign>()(out, align, n);
        if (rc == 0) [[likely]]
            *out = counted(*out);  // a heap sample may move the block
        return rc;
    };
    if (!ready()) [[unlikely]]
        return unresolved([=] { return (*out = bootstrap_alloc(n, align)) ? 0 : ENOMEM; }, call);
    return call();
}

GOMETRICS_EXPORT void* aligned_alloc(size_t align, size_t n) noexcept {
    auto call = [=] { return counted(real_fn<&R::aligned_alloc>()(align, n)); };
    if (!ready()) [[unlikely]]
        return unresolved([=] { return bootstrap_alloc(n, align); }, call);
    return call();
}

GOMETRICS_EXPORT void* memalign(size_t align, size_t n) noexcept {
    auto call = [=] { return counted(real_fn<&R::memalign>()(align, n)); };
    if (!ready()) [[unlikely]]
        return unresolved([=] { return bootstrap_alloc(n, align); }, call);
    return call();
}

GOMETRICS_EXPORT void* valloc(size_t n) noexcept {
    auto call = [n] { return counted(real_fn<&R::valloc>()(n)); };
    if (!ready()) [[unlikely]]
        return unresolved([n] { return bootstrap_alloc(n, 4096); }, call);
    return call();
}

GOMETRICS_EXPORT void* pvalloc(size_t n) noexcept {
    auto call = [n] { return counted(real_fn<&R::pvalloc>()(n)); };
    if (!ready()) [[unlikely]]
        return unresolved([n] { return bootstrap_alloc((n + 4095) & ~size_t{4095}, 4096); }, call);
    return call();
}

GOMETRICS_EXPORT size_t malloc_usable_size(void* p) noexcept {
    if (!p) return 0;
    if (is_bootstrap(p)) [[unlikely]]
        return bootstrap_usable_size(p);
    if (!ready()) [[unlikely]]
        if (bootstrap_or_resolve()) return 0;
    // A sampled block that moved keeps the size the program had (profile.h),
    // which is never more than its chunk's: the smaller of the two, should
    // the sample be another block's that had this address a moment ago.
    const size_t real = real_fn<&R::malloc_usable_size>()(p);
    if (profile::maybe_sampled(p)) [[unlikely]]
        if (const size_t counted = profile::sampled_size(p)) return counted < real ? counted : real;
    return real;
}

// glibc's old names for its own malloc family, which some programs call
// directly (wrappers written when __malloc_hook was the way): the same
// hooks, or their blocks' frees would be counted without their allocations.
#define GOMETRICS_LIBC_ALIAS(name, ret, params) \
    extern "C" [[gnu::visibility("default"), gnu::alias(#name), gnu::copy(::name)]] ret __libc_##name params noexcept;
GOMETRICS_LIBC_ALIAS(malloc, void*, (size_t))
GOMETRICS_LIBC_ALIAS(free, void, (void*))
GOMETRICS_LIBC_ALIAS(calloc, void*, (size_t, size_t))
GOMETRICS_LIBC_ALIAS(realloc, void*, (void*, size_t))
GOMETRICS_LIBC_ALIAS(memalign, void*, (size_t, size_t))
GOMETRICS_LIBC_ALIAS(valloc, void*, (size_t))
GOMETRICS_LIBC_ALIAS(pvalloc, void*, (size_t))
#undef GOMETRICS_LIBC_ALIAS

namespace gometrics::agent::hooks {
namespace {

void* realloc_from_bootstrap(void* p, size_t n) noexcept {
    void* q = ::malloc(n);  // through our hook: counted like any allocation
    if (q) {
        const size_t old = bootstrap_usable_size(p);
        std::memcpy(q, p, old < n ? old : n);
    }
    return q;
}

}  // namespace
}  // namespace gometrics::agent::hooks
