// Resolution of the real functions and the bootstrap arena; see real.h.
#include "real.h"
#include "clocks.h"

#include <dlfcn.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "buffer.h"
#include "jemalloc_sizes.h"
#include "loaded_object.h"
#include "profile.h"
#include "log.h"

namespace gometrics::agent {

namespace {
void* unresolved_malloc(size_t n) noexcept;
void* unresolved_calloc(size_t n, size_t size) noexcept;
}  // namespace

namespace detail {
constexpr RealFunctions unresolved_functions() {
    RealFunctions f{};
    f.malloc = unresolved_malloc;
    f.calloc = unresolved_calloc;
    return f;
}
constinit RealFunctions g_real = unresolved_functions();
constinit std::atomic<int> g_resolve_state{0};
GOMETRICS_BUFFER alignas(64) constinit unsigned char g_arena[kArenaSize];
constinit bool g_glibc_chunks = false;
constinit bool g_switched = false;
}  // namespace detail

namespace {

using namespace detail;

// The arena serves allocations made while dlsym runs (and nothing else).
// Each block is preceded by its size so realloc and malloc_usable_size work.
constinit std::atomic<size_t> g_arena_used{0};

template <class Fn>
void resolve_one(Fn& slot, const char* name) noexcept {
    slot = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

// Whether one block's header reads as malloc_usable_size says, both ways.
bool agrees(const RealFunctions& f, void* p) noexcept {
    const size_t head = glibc::chunk_head(p), usable = f.malloc_usable_size(p);
    return glibc::chunk_usable(head) == usable && (!glibc::small_chunk(head) || glibc::small_chunk_usable(head) == usable);
}

// Whether the hooks may read glibc's chunk header (real.h): the real malloc
// must live in libc.so.6 and agree with malloc_usable_size on small and
// large heap blocks, through both the general and the small-chunk reading.
// Mapped blocks are checked on the program's first one (mmapped_usable_size):
// a probe of our own would either change glibc's dynamic thresholds as it
// is freed or have to be larger than they go (33 MiB, which glibc writes in
// full under MALLOC_PERTURB_), and the only way around that (mremap) may be
// refused by a sandbox.
bool verify_glibc_chunks(const RealFunctions& f) noexcept {
    sys::LoadedObject object;
    if (!sys::object_of(reinterpret_cast<void*>(f.malloc), object) || !std::strstr(object.path, "/libc.so.6"))
        return false;
    // Under memcheck the blocks are valgrind's, with red zones where glibc
    // keeps its header: the reads below find no agreement (and report none);
    // under callgrind they are glibc's, as without valgrind.
    VALGRIND_DISABLE_ERROR_REPORTING;
    bool same = true;
    for (size_t n : {size_t{0}, size_t{1}, size_t{24}, size_t{100}, size_t{992}, size_t{1000}, size_t{1016},
                     size_t{1024}, size_t{5000}}) {
        void* p = f.malloc(n);
        if (!p) continue;
        same = same && agrees(f, p);
        f.free(p);
    }
    VALGRIND_ENABLE_ERROR_REPORTING;
    return same;
}

// How mapped chunks are sized: not known before the first, then read from
// the header or, if that disagreed with malloc_usable_size, asked.
enum : uint8_t { kMappedUnknown, kMappedRead, kMappedAsked };
constinit std::atomic<uint8_t> g_mapped_sizing{kMappedUnknown};

// What resolution found, complete before the state says ready (the stubs
// forward to it, whatever g_real shows at that moment).
constinit RealFunctions g_found{};

// Makes the resolved functions visible to every thread, in two steps around
// the state's move to ready (resolve_real): every member but malloc and
// calloc before it, so that a hook that sees ready finds what it calls; those
// two after it, so that a thread holding a real block, which came from one of
// them, also sees ready (realloc, free and malloc_usable_size of a real block
// must not take the unresolved paths).
void publish_all_but_stubbed(const RealFunctions& found) noexcept {
    RealFunctions& to = g_real;
#define GOMETRICS_PUBLISH(name, ...) \
    if (std::string_view(#name) != "malloc" && std::string_view(#name) != "calloc") \
        __atomic_store_n(&to.name, found.name, __ATOMIC_RELAXED);
    GOMETRICS_REAL_FUNCTIONS(GOMETRICS_PUBLISH)
#undef GOMETRICS_PUBLISH
    __atomic_store_n(&to.pthread_create, found.pthread_create, __ATOMIC_RELAXED);
}

// Replaces a stub that g_real still holds (by the resolving thread, or in a
// forked child whose parent was between the two steps); never what the
// allocator switch put there.
template <auto Member, class Fn>
void publish_stubbed(Fn stub) noexcept {
    Fn expected = stub;
    __atomic_compare_exchange_n(&(g_real.*Member), &expected, g_found.*Member, false, __ATOMIC_RELEASE,
                                __ATOMIC_RELAXED);
}

// The stubs g_real starts with: serve dlsym's calls while resolving, or
// resolve, then forward.
bool bootstrap_or_resolve() noexcept {
    if (resolving()) return true;
    resolve_real();
    return false;
}

void* unresolved_malloc(size_t n) noexcept {
    if (bootstrap_or_resolve()) return bootstrap_alloc(n, 16);
    publish_stubbed<&RealFunctions::malloc>(unresolved_malloc);
    const auto f = real_fn<&RealFunctions::malloc>();
    return (f == unresolved_malloc ? g_found.malloc : f)(n);
}

void* unresolved_calloc(size_t n, size_t size) noexcept {
    if (bootstrap_or_resolve()) {
        size_t total;
        if (__builtin_mul_overflow(n, size, &total)) {
            errno = ENOMEM;
            return nullptr;
        }
        return bootstrap_alloc(total, 16);  // static storage: already zero
    }
    publish_stubbed<&RealFunctions::calloc>(unresolved_calloc);
    const auto f = real_fn<&RealFunctions::calloc>();
    return (f == unresolved_calloc ? g_found.calloc : f)(n, size);
}

}  // namespace

bool resolving() noexcept { return g_resolve_state.load(std::memory_order_acquire) == 1; }

void real_after_fork_child() noexcept {
    int in_progress = 1;
    g_resolve_state.compare_exchange_strong(in_progress, 0, std::memory_order_relaxed);
    detail::jemalloc_sizes_after_fork_child();
}

void* bootstrap_alloc(size_t size, size_t align) noexcept {
    if (align < 16) align = 16;
    if (align & (align - 1)) {  // as the real aligned functions refuse it
        errno = EINVAL;
        return nullptr;
    }
    const auto base = reinterpret_cast<uintptr_t>(g_arena);
    size_t used = g_arena_used.load(std::memory_order_relaxed);
    for (;;) {
        // Aligned as an address: the arena itself is only cache-line aligned.
        const size_t start = ((base + used + sizeof(size_t) + align - 1) & ~(align - 1)) - base;
        const size_t end = start + size;
        if (start > kArenaSize || end > kArenaSize || end < start) {
            errno = ENOMEM;  // as malloc says it
            return nullptr;
        }
        if (g_arena_used.compare_exchange_weak(used, end, std::memory_order_relaxed)) {
            const size_t head = size * 8 + 2;  // see real.h: never a small glibc chunk
            std::memcpy(g_arena + start - sizeof(size_t), &head, sizeof head);
            // A maybe-sampled block to the free hooks (saturated: for good),
            // so that only their slow path, which knows it, ever sees it.
            std::atomic_ref<uint8_t>(profile::detail::g_live_filter[profile::detail::filter_index(g_arena + start)])
                .store(255, std::memory_order_release);
            return g_arena + start;  // zeroed: static storage, never reused
        }
    }
}

size_t bootstrap_usable_size(const void* p) noexcept {
    size_t head;
    std::memcpy(&head, static_cast<const unsigned char*>(p) - sizeof(size_t), sizeof head);
    return head / 8;
}

namespace detail {

void resolve_real() noexcept {
    int expected = 0;
    if (!g_resolve_state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
        // Another thread resolves. (Allocations re-entering from dlsym never
        // get here: the hooks route them to the arena while resolving().)
        while (g_resolve_state.load(std::memory_order_acquire) != 2) sys::pause_ns(sys::kWaitNs);
        return;
    }
    const int saved_errno = errno;  // the hook that got here returns the real call's errno
    RealFunctions found{};
#define GOMETRICS_RESOLVE(name, ...) resolve_one(found.name, #name);
    GOMETRICS_REAL_FUNCTIONS(GOMETRICS_RESOLVE)
#undef GOMETRICS_RESOLVE
    // The default version of pthread_create, as an unversioned reference
    // from the program would bind to; older glibc has only GLIBC_2.2.5.
    using CreateFn = decltype(found.pthread_create);
    found.pthread_create = reinterpret_cast<CreateFn>(dlvsym(RTLD_NEXT, "pthread_create", "GLIBC_2.34"));
    if (!found.pthread_create)
        found.pthread_create = reinterpret_cast<CreateFn>(dlvsym(RTLD_NEXT, "pthread_create", "GLIBC_2.2.5"));
    if (!found.pthread_create) resolve_one(found.pthread_create, "pthread_create");

    if (!found.malloc || !found.free || !found.calloc || !found.realloc || !found.malloc_usable_size) {
        // Nothing to forward to: the process cannot run. Say so and stop.
        log::fatal("cannot resolve the real malloc family with dlsym(RTLD_NEXT)");
    }
    // GOMETRICS_ALLOCATOR: before glibc's first real allocation.
    prepare_allocator_switch(reinterpret_cast<void*>(found.malloc));
    g_glibc_chunks = verify_glibc_chunks(found);
    if (!g_glibc_chunks) find_size_functions(reinterpret_cast<void*>(found.malloc));
    g_found = found;
    publish_all_but_stubbed(found);
    g_resolve_state.store(2, std::memory_order_release);
    publish_stubbed<&RealFunctions::calloc>(unresolved_calloc);
    publish_stubbed<&RealFunctions::malloc>(unresolved_malloc);
    errno = saved_errno;
}

decltype(&::malloc) found_malloc() noexcept { return g_found.malloc; }

size_t mmapped_usable_size(void* p, size_t head) noexcept {
    switch (g_mapped_sizing.load(std::memory_order_relaxed)) {
        case kMappedRead:
            return glibc::chunk_usable(head);
        case kMappedAsked:
            return asked_usable_size(p);
        default: {
            // Threads that meet their first mapped chunks at once all ask,
            // and all find the same answer.
            const size_t asked = asked_usable_size(p);
            g_mapped_sizing.store(glibc::chunk_usable(head) == asked ? kMappedRead : kMappedAsked,
                                  std::memory_order_relaxed);
            return asked;
        }
    }
}

}  // namespace detail

void* real_malloc_address() noexcept { return reinterpret_cast<void*>(real().malloc); }

}  // namespace gometrics::agent
