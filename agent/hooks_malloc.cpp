// The malloc family, interposed. Each hook is: forward to the real function,
// then count the result in the calling thread's slot (usable sizes, so that
// live = allocs - frees holds exactly). Return values and errno are the real
// function's: counting never touches errno and never fails.
#include <errno.h>

#include <cstring>

#include "profile.h"
#include "real.h"
#include "slots.h"

#define GOMETRICS_EXPORT extern "C" [[gnu::visibility("default")]]

namespace gometrics::agent {
namespace {

using detail::g_real;

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

// An allocation or a free: its bytes, and its size bucket (which also
// counts objects: the collector sums the buckets).
[[gnu::always_inline]] inline void record(uint64_t& bytes, uint64_t* by_size, size_t usable) noexcept {
    bump(bytes, usable);
    bump(by_size[buckets::size_index(usable)], 1);
}

// Cold: no slot yet (claims one), the thread has exited (the shared orphan
// slot, atomically), or the agent's own work (not counted).
[[gnu::noinline, gnu::cold]] void record_cold(bool is_free, size_t usable) noexcept {
    ThreadSlot* s = detail::slow_slot();
    if (!s) return;
    uint64_t& bytes = is_free ? s->free_bytes : s->alloc_bytes;
    uint64_t* by_size = is_free ? s->free_by_size : s->alloc_by_size;
    if (is_orphans(s)) {
        bump_shared(bytes, usable);
        bump_shared(by_size[buckets::size_index(usable)], 1);
    } else {
        record(bytes, by_size, usable);
    }
}

[[gnu::always_inline]] inline bool has_slot(ThreadSlot* s) noexcept {
    return reinterpret_cast<uintptr_t>(s) > detail::kMaxMarker;
}

// Counts the allocation, and samples it for the heap profile when the
// thread's countdown of bytes crosses zero (profile.h).
[[gnu::always_inline]] inline void count_alloc(void* p) noexcept {
    ThreadSlot* s = detail::tls_slot;
    if (has_slot(s)) [[likely]] {
        const size_t usable = usable_size(p);
        record(s->alloc_bytes, s->alloc_by_size, usable);
        if ((s->sample_countdown -= static_cast<int64_t>(usable)) < 0) [[unlikely]]
            profile::sample_alloc(s, p, usable);
    } else if (s != detail::marker(detail::kAgentThread)) {
        record_cold(false, usable_size(p));
    }
}

// A block is going away: if it was sampled, the profile moves it from
// in use to freed. Unsampled blocks cost a hash and one byte load.
[[gnu::always_inline]] inline void forget_if_sampled(void* p) noexcept {
    if (profile::maybe_sampled(p)) [[unlikely]]
        profile::forget(p);
}

[[gnu::always_inline]] inline void count_free_usable(size_t usable) noexcept {
    ThreadSlot* s = detail::tls_slot;
    if (has_slot(s)) [[likely]]
        record(s->free_bytes, s->free_by_size, usable);
    else if (s != detail::marker(detail::kAgentThread))
        record_cold(true, usable);
}

// Reads the size before the real free: the block is gone afterwards.
[[gnu::always_inline]] inline void count_free(void* p) noexcept {
    ThreadSlot* s = detail::tls_slot;
    if (has_slot(s)) [[likely]]
        record(s->free_bytes, s->free_by_size, usable_size(p));
    else if (s != detail::marker(detail::kAgentThread))
        record_cold(true, usable_size(p));
}

// realloc and reallocarray: a free of the old block plus an allocation of
// the new one, counted only for what really happened.
[[gnu::always_inline]] inline void* counted_realloc(void* p, bool zero_size, auto&& real_call) noexcept {
    if (!p) {
        void* q = real_call();
        if (q) count_alloc(q);
        return q;
    }
    const size_t old_usable = usable_size(p);
    const bool sampled = profile::maybe_sampled(p);
    void* q = real_call();
    if (q || zero_size) {  // glibc: realloc(p, 0) frees p and returns NULL
        // After the call, since p lives on if it fails. Should another
        // thread get p's address and have it sampled in between, its sample
        // would be taken for p's free: a window of a few instructions.
        if (sampled) [[unlikely]]
            profile::forget(p);
        count_free_usable(old_usable);
    }
    if (q) count_alloc(q);
    return q;
}

// realloc of a bootstrap block: move it to the real heap, never free it.
[[gnu::noinline, gnu::cold]] void* realloc_from_bootstrap(void* p, size_t n) noexcept;

}  // namespace
}  // namespace gometrics::agent

using namespace gometrics::agent;

GOMETRICS_EXPORT void* malloc(size_t n) noexcept {
    if (!ready()) [[unlikely]]
        if (bootstrap_or_resolve()) return bootstrap_alloc(n, 16);
    void* p = g_real.malloc(n);
    if (p) [[likely]]
        count_alloc(p);
    return p;
}

GOMETRICS_EXPORT void free(void* p) noexcept {
    if (!p || is_bootstrap(p)) [[unlikely]]
        return;
    if (!ready()) [[unlikely]]
        if (bootstrap_or_resolve()) return;  // nothing to forward to yet: leak it
    count_free(p);
    forget_if_sampled(p);
    g_real.free(p);
}

GOMETRICS_EXPORT void* calloc(size_t n, size_t size) noexcept {
    if (!ready()) [[unlikely]]
        if (bootstrap_or_resolve()) {
            size_t total;
            if (__builtin_mul_overflow(n, size, &total)) return nullptr;
            return bootstrap_alloc(total, 16);  // static storage: already zero
        }
    void* p = g_real.calloc(n, size);
    if (p) [[likely]]
        count_alloc(p);
    return p;
}

GOMETRICS_EXPORT void* realloc(void* p, size_t n) noexcept {
    if (is_bootstrap(p)) [[unlikely]]
        return realloc_from_bootstrap(p, n);
    if (!ready()) [[unlikely]]
        if (bootstrap_or_resolve()) return bootstrap_alloc(n, 16);  // p is null here: nothing real exists yet
    return counted_realloc(p, n == 0, [&] { return g_real.realloc(p, n); });
}

GOMETRICS_EXPORT void* reallocarray(void* p, size_t n, size_t size) noexcept {
    size_t total;
    const bool overflow = __builtin_mul_overflow(n, size, &total);
    if (is_bootstrap(p)) [[unlikely]] {
        if (overflow) {
            errno = ENOMEM;
            return nullptr;
        }
        return realloc_from_bootstrap(p, total);
    }
    if (!ready()) [[unlikely]]
        if (bootstrap_or_resolve()) return overflow ? nullptr : bootstrap_alloc(total, 16);
    return counted_realloc(p, !overflow && total == 0, [&] { return g_real.reallocarray(p, n, size); });
}

GOMETRICS_EXPORT int posix_memalign(void** out, size_t align, size_t n) noexcept {
    if (!ready()) [[unlikely]]
        if (bootstrap_or_resolve()) return (*out = bootstrap_alloc(n, align)) ? 0 : ENOMEM;
    const int rc = g_real.posix_memalign(out, align, n);
    if (rc == 0) [[likely]]
        count_alloc(*out);
    return rc;
}

GOMETRICS_EXPORT void* aligned_alloc(size_t align, size_t n) noexcept {
    if (!ready()) [[unlikely]]
        if (bootstrap_or_resolve()) return bootstrap_alloc(n, align);
    void* p = g_real.aligned_alloc(align, n);
    if (p) [[likely]]
        count_alloc(p);
    return p;
}

GOMETRICS_EXPORT void* memalign(size_t align, size_t n) noexcept {
    if (!ready()) [[unlikely]]
        if (bootstrap_or_resolve()) return bootstrap_alloc(n, align);
    void* p = g_real.memalign(align, n);
    if (p) [[likely]]
        count_alloc(p);
    return p;
}

GOMETRICS_EXPORT void* valloc(size_t n) noexcept {
    if (!ready()) [[unlikely]]
        if (bootstrap_or_resolve()) return bootstrap_alloc(n, 4096);
    void* p = g_real.valloc(n);
    if (p) [[likely]]
        count_alloc(p);
    return p;
}

GOMETRICS_EXPORT void* pvalloc(size_t n) noexcept {
    if (!ready()) [[unlikely]]
        if (bootstrap_or_resolve()) return bootstrap_alloc((n + 4095) & ~size_t{4095}, 4096);
    void* p = g_real.pvalloc(n);
    if (p) [[likely]]
        count_alloc(p);
    return p;
}

GOMETRICS_EXPORT size_t malloc_usable_size(void* p) noexcept {
    if (!p) return 0;
    if (is_bootstrap(p)) [[unlikely]]
        return bootstrap_usable_size(p);
    if (!ready()) [[unlikely]]
        if (bootstrap_or_resolve()) return 0;
    return g_real.malloc_usable_size(p);
}

namespace gometrics::agent {
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
}  // namespace gometrics::agent
