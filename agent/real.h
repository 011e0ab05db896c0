// The real functions behind our hooks, declared from one typed list so each
// has the exact type of the function it stands for (heaptrack's HOOK idea).
// Resolved lazily with dlsym(RTLD_NEXT) on the first hook call, which may
// come before our constructor (other libraries' constructors allocate).
#pragma once

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "facts/agent_facts.h"

// The lists take a variadic X(name, ...): the lock calls add their
// parameters and the arguments that pass them on (attach.cpp's wrappers).
// The malloc family as the hooks interpose it (an attached agent redirects
// the same, and reallocarray).
#define GOMETRICS_MALLOC_FUNCTIONS(X) \
    X(malloc)                         \
    X(free)                           \
    X(calloc)                         \
    X(realloc)                        \
    X(posix_memalign)                 \
    X(aligned_alloc)                  \
    X(memalign)                       \
    X(valloc)                         \
    X(pvalloc)                        \
    X(malloc_usable_size)

// The lock calls that may wait.
#define GOMETRICS_LOCK_FUNCTIONS(X)                                                                 \
    X(pthread_mutex_lock, (pthread_mutex_t * m), (m))                                              \
    X(pthread_mutex_timedlock, (pthread_mutex_t * m, const timespec* t), (m, t))                   \
    X(pthread_mutex_clocklock, (pthread_mutex_t * m, clockid_t c, const timespec* t), (m, c, t))   \
    X(pthread_rwlock_rdlock, (pthread_rwlock_t * l), (l))                                          \
    X(pthread_rwlock_wrlock, (pthread_rwlock_t * l), (l))                                          \
    X(pthread_rwlock_timedrdlock, (pthread_rwlock_t * l, const timespec* t), (l, t))               \
    X(pthread_rwlock_timedwrlock, (pthread_rwlock_t * l, const timespec* t), (l, t))               \
    X(pthread_rwlock_clockrdlock, (pthread_rwlock_t * l, clockid_t c, const timespec* t), (l, c, t)) \
    X(pthread_rwlock_clockwrlock, (pthread_rwlock_t * l, clockid_t c, const timespec* t), (l, c, t))

// Every function interposed by the agent, found with dlsym(RTLD_NEXT).
#define GOMETRICS_REAL_FUNCTIONS(X) \
    GOMETRICS_MALLOC_FUNCTIONS(X)   \
    GOMETRICS_LOCK_FUNCTIONS(X)     \
    X(sigaction)                    \
    X(signal)                       \
    X(sysv_signal)                  \
    X(sigset)                       \
    X(setuid)                       \
    X(seteuid)                      \
    X(setreuid)                     \
    X(setresuid)                    \
    X(_Fork)

// Declarations of the agent's internals are hidden too, so the hooks reach
// them PC-relative rather than through the GOT.
#pragma GCC visibility push(hidden)

namespace gometrics::agent {

// sigset is deprecated, but programs still call it: the hook forwards to it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
struct RealFunctions {
#define GOMETRICS_DECLARE_REAL(name, ...) decltype(&::name) name;
    GOMETRICS_REAL_FUNCTIONS(GOMETRICS_DECLARE_REAL)
#undef GOMETRICS_DECLARE_REAL
    // Versioned in glibc 2.34+ (pthread_create@@GLIBC_2.34): resolved with
    // dlvsym to the default version, see real.cpp.
    decltype(&::pthread_create) pthread_create;
};
#pragma GCC diagnostic pop

namespace detail {
// The real functions. Before resolution malloc and calloc point at stubs
// that resolve (or serve dlsym's own calls from the bootstrap arena), so
// the hottest hooks need no readiness check; the other members are null
// until resolution publishes them, then the ready state, then malloc and
// calloc (real.cpp): whoever holds a real block sees ready. The hooks load
// them with real_fn().
extern RealFunctions g_real;
extern std::atomic<int> g_resolve_state;  // 0 unresolved, 1 resolving, 2 ready
[[gnu::noinline, gnu::cold]] void resolve_real() noexcept;
// allocator_switch.cpp: tells glibc, if the switch is asked, to keep every
// block in its brk heap from now on.
void prepare_allocator_switch(void* real_malloc) noexcept;
// The malloc that resolution found (dlsym RTLD_NEXT), whatever the
// allocator switch put in g_real since; nullptr before resolution.
decltype(&::malloc) found_malloc() noexcept;
}  // namespace detail

// A member of g_real, as the hooks call it: one load (acquire: a published
// malloc implies everything resolution wrote before it).
template <auto Member>
[[gnu::always_inline]] inline auto real_fn() noexcept {
    return __atomic_load_n(&(detail::g_real.*Member), __ATOMIC_ACQUIRE);
}

// The same where the caller knows resolution is complete (its thread has a
// slot, which only a resolved agent hands out): a plain load, which the
// compiler folds into the call or jump itself.
template <auto Member>
[[gnu::always_inline]] inline auto resolved_fn() noexcept {
    return detail::g_real.*Member;
}

// The real functions, resolved on first use.
[[gnu::always_inline]] inline const RealFunctions& real() noexcept {
    if (detail::g_resolve_state.load(std::memory_order_acquire) != 2) [[unlikely]]
        detail::resolve_real();
    return detail::g_real;
}

// dlsym may calloc while we resolve; those calls are served from a static
// arena. Its pointers must never reach the real free/realloc.
bool resolving() noexcept;
// In a forked child: a resolution another thread had under way will never
// finish here; start it again from scratch.
void real_after_fork_child() noexcept;
// Each bootstrap block is preceded by a word holding size * 8 + 2: bit 1 is
// glibc's IS_MMAPPED, so the hooks' inline glibc path never takes a
// bootstrap block for a small chunk, and sends it to the slow path, which
// recognises it. The other allocators' path sends it there too: the heap
// profile's live filter says it may be a sample (profile.h).
void* bootstrap_alloc(size_t size, size_t align) noexcept;
size_t bootstrap_usable_size(const void* p) noexcept;

// GOMETRICS_ALLOCATOR=jemalloc (real.cpp): from here on the program's
// malloc family is served by Debian's libjemalloc.so.2, loaded privately;
// g_real's malloc family then points at jemalloc, or at routers that send a
// block allocated before the switch back to glibc. Called once by the
// constructor, before any thread of ours exists. Says on stderr why when it
// cannot switch, and the process stays on glibc.
void switch_allocator_if_asked() noexcept;

// switched_mallctl(): facts/agent_facts.h.
// After a switch: p is one of glibc's blocks from before it.
bool switched_glibc_owns(const void* p) noexcept;

namespace detail {
inline constexpr size_t kArenaSize = 64 * 1024;
extern unsigned char g_arena[kArenaSize];
// True when the real malloc is glibc's and its chunk header was verified
// against malloc_usable_size at start-up (real.cpp).
extern bool g_glibc_chunks;
// GOMETRICS_ALLOCATOR switched the process to jemalloc (switched_glibc_owns()).
extern bool g_switched;
}  // namespace detail

[[gnu::always_inline]] inline bool is_bootstrap(const void* p) noexcept {
    return reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(detail::g_arena) < detail::kArenaSize;
}

// glibc's chunk header, read inline when detail::g_glibc_chunks says the real
// malloc is glibc's (verified against malloc_usable_size at start-up). The
// word at p - 8 is the chunk size with three flag bits: PREV_INUSE (1),
// IS_MMAPPED (2), NON_MAIN_ARENA (4). A heap chunk lends its successor's
// prev_size word, an mmapped chunk has a two-word header: usable sizes are
// glibc's musable() arithmetic, without the call.
namespace glibc {
// GCC rightly sees a read before the start of the block malloc returned.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
[[gnu::always_inline]] inline size_t chunk_head(const void* p) noexcept {
    size_t head;
    __builtin_memcpy(&head, static_cast<const unsigned char*>(p) - sizeof head, sizeof head);
    return head;
}
#pragma GCC diagnostic pop
[[gnu::always_inline]] constexpr size_t chunk_usable(size_t head) noexcept {
    return (head & ~size_t{7}) - sizeof(size_t) - ((head & 2) << 2);  // IS_MMAPPED: one word more
}
// A heap chunk of at most 1008 bytes (flags other than IS_MMAPPED allowed):
// its usable size is one of buckets.h's small sizes, in one `and`.
[[gnu::always_inline]] constexpr bool small_chunk(size_t head) noexcept { return (head & ~size_t{0x3F0 | 5}) == 0; }
[[gnu::always_inline]] constexpr size_t small_chunk_size(size_t head) noexcept { return head & 0x3F0; }
// Any chunk of glibc's heap, not mmapped (the agent's bootstrap blocks say
// IS_MMAPPED too): its usable size is chunk_usable(head).
[[gnu::always_inline]] constexpr bool heap_chunk(size_t head) noexcept { return (head & 2) == 0; }
[[gnu::always_inline]] constexpr size_t small_chunk_usable(size_t head) noexcept {
    return small_chunk_size(head) - sizeof(size_t);
}
static_assert(small_chunk(0x3F1) && small_chunk_usable(0x3F5) == 1000 && small_chunk_usable(0x21) == 24 &&
              !small_chunk(0x400) && !small_chunk(0x3F2) && !small_chunk(0x1003) && chunk_usable(0x3F5) == 1000);
}  // namespace glibc

namespace detail {
// The real malloc_usable_size, called with the calling thread marked as the
// agent's own (slots.cpp): tcmalloc's allocates on its first call (operator
// new, MallocExtension), which must not come back into counting, and so into
// this call, forever.
size_t asked_usable_size(void* p) noexcept;
}  // namespace detail

namespace detail {
// A mapped glibc chunk's usable size: its header once the first one read as
// malloc_usable_size said (real.cpp), else asked.
size_t mmapped_usable_size(void* p, size_t head) noexcept;
}  // namespace detail

// malloc_usable_size of a live block: glibc's header read inline, anything
// else (jemalloc, tcmalloc, glibc's debug malloc) asked.
[[gnu::always_inline]] inline size_t usable_size(void* p) noexcept {
    if (detail::g_glibc_chunks) [[likely]] {
        const size_t head = glibc::chunk_head(p);
        if (glibc::heap_chunk(head)) [[likely]]
            return glibc::chunk_usable(head);
        return detail::mmapped_usable_size(p, head);
    }
    return detail::asked_usable_size(p);
}

}  // namespace gometrics::agent

#pragma GCC visibility pop
