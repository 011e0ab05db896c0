// Resolution of the real functions and the bootstrap arena; see real.h.
#include "real.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "log.h"

namespace gometrics::agent {

namespace detail {
constinit RealFunctions g_real{};
constinit std::atomic<int> g_resolve_state{0};
alignas(64) constinit unsigned char g_arena[kArenaSize];
constinit bool g_glibc_chunks = false;
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

// Whether usable_size() may read glibc's chunk header: the real malloc must
// live in libc.so.6 and agree with malloc_usable_size on small, large and
// mmapped blocks.
bool verify_glibc_chunks() noexcept {
    Dl_info info{};
    if (!dladdr(reinterpret_cast<void*>(g_real.malloc), &info) || !info.dli_fname ||
        !std::strstr(info.dli_fname, "/libc.so.6"))
        return false;
    g_glibc_chunks = true;
    bool same = true;
    for (size_t n : {size_t{0}, size_t{1}, size_t{24}, size_t{100}, size_t{1000}, size_t{70000}, size_t{300000}}) {
        void* p = g_real.malloc(n);
        if (!p) continue;
        same = same && usable_size(p) == g_real.malloc_usable_size(p);
        g_real.free(p);
    }
    g_glibc_chunks = false;
    return same;
}

}  // namespace

bool resolving() noexcept { return g_resolve_state.load(std::memory_order_acquire) == 1; }

void real_after_fork_child() noexcept {
    int in_progress = 1;
    g_resolve_state.compare_exchange_strong(in_progress, 0, std::memory_order_relaxed);
}

void* bootstrap_alloc(size_t size, size_t align) noexcept {
    if (align < 16) align = 16;
    size_t used = g_arena_used.load(std::memory_order_relaxed);
    for (;;) {
        const size_t start = (used + sizeof(size_t) + align - 1) & ~(align - 1);
        const size_t end = start + size;
        if (end > kArenaSize || end < start) return nullptr;
        if (g_arena_used.compare_exchange_weak(used, end, std::memory_order_relaxed)) {
            std::memcpy(g_arena + start - sizeof(size_t), &size, sizeof size);
            return g_arena + start;  // zeroed: static storage, never reused
        }
    }
}

size_t bootstrap_usable_size(const void* p) noexcept {
    size_t n;
    std::memcpy(&n, static_cast<const unsigned char*>(p) - sizeof(size_t), sizeof n);
    return n;
}

namespace detail {

void resolve_real() noexcept {
    int expected = 0;
    if (!g_resolve_state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
        // Another thread resolves. (Allocations re-entering from dlsym never
        // get here: the hooks route them to the arena while resolving().)
        while (g_resolve_state.load(std::memory_order_acquire) != 2) sched_yield();
        return;
    }
#define GOMETRICS_RESOLVE(name) resolve_one(g_real.name, #name);
    GOMETRICS_REAL_FUNCTIONS(GOMETRICS_RESOLVE)
#undef GOMETRICS_RESOLVE
    // The default version of pthread_create, as an unversioned reference
    // from the program would bind to; older glibc has only GLIBC_2.2.5.
    g_real.pthread_create = reinterpret_cast<decltype(g_real.pthread_create)>(dlvsym(RTLD_NEXT, "pthread_create", "GLIBC_2.34"));
    if (!g_real.pthread_create)
        g_real.pthread_create = reinterpret_cast<decltype(g_real.pthread_create)>(dlvsym(RTLD_NEXT, "pthread_create", "GLIBC_2.2.5"));
    if (!g_real.pthread_create) resolve_one(g_real.pthread_create, "pthread_create");

    if (!g_real.malloc || !g_real.free || !g_real.calloc || !g_real.realloc) {
        // Nothing to forward to: the process cannot run. Say so and stop.
        log::fatal("cannot resolve the real malloc family with dlsym(RTLD_NEXT)");
    }
    prepare_allocator_switch();  // GOMETRICS_ALLOCATOR: before glibc's first real allocation
    g_glibc_chunks = verify_glibc_chunks();
    g_resolve_state.store(2, std::memory_order_release);
}

}  // namespace detail

}  // namespace gometrics::agent
