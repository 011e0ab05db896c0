// jemalloc's block sizes without asking it; see jemalloc_sizes.h.
#include "jemalloc_sizes.h"
#include "clocks.h"

#include <dlfcn.h>

#include <atomic>
#include <cstring>

#include "buffer.h"
#include "loaded_object.h"
#include "real.h"

namespace gometrics::agent {

namespace detail {
GOMETRICS_BUFFER alignas(64) constinit uint16_t g_request_usable[jemalloc::kTableMax / 8 + 1]{};
constinit size_t g_request_limit = 0;
}  // namespace detail

namespace {

using namespace detail;

struct Functions {
    NallocxFn nallocx;
    NameToMibFn name_to_mib;
    ByMibFn by_mib;
};
constinit Functions g_fns{};
constinit size_t g_mib[4]{};
constinit size_t g_mib_length = 0;

// kFound: the real malloc is jemalloc's (g_fns set), not checked yet. One
// thread checks; the others wait for the outcome (a few microseconds).
enum State : int { kNone, kFound, kChecking, kReady, kFailed };
constinit std::atomic<int> g_state{kNone};

// The calling thread's "thread.deallocatedp": a pointer to its own counter.
const uint64_t* thread_freed() noexcept {
    uint64_t* counter = nullptr;
    size_t size = sizeof counter;
    if (g_fns.by_mib(g_mib, g_mib_length, &counter, &size, nullptr, 0) != 0 || size != sizeof counter) return nullptr;
    return counter;
}

// Whether jemalloc gives what the hooks will assume: for each request, the
// usable size nallocx says, and a free moves the thread's counter by that.
bool check(const uint64_t* freed) noexcept {
    const RealFunctions& real = g_real;
    for (size_t n : {size_t{0}, size_t{1}, size_t{8}, size_t{9}, size_t{24}, size_t{100}, size_t{129}, size_t{1000}, size_t{1016},
                     size_t{1024}, size_t{1025}, size_t{4000}, size_t{8192}, size_t{14337}, jemalloc::kTableMax}) {
        for (bool zeroed : {false, true}) {
            void* p = zeroed ? real.calloc(n, 1) : real.malloc(n);
            if (!p) return false;
            const size_t usable = real.malloc_usable_size(p);
            const uint64_t before = *freed;
            real.free(p);
            // malloc(0) is malloc(1) to jemalloc, whose nallocx(0) is undefined.
            if (usable != g_fns.nallocx(n ? n : 1, 0) || *freed - before != usable) return false;
        }
    }
    return true;
}

// Size classes only grow with the request, and a class's size is its own
// class: every request from one class boundary to the next gets that class.
// Request 0 is request 1's (check()).
bool build_table() noexcept {
    constexpr size_t kLast = jemalloc::kTableMax / 8;
    for (size_t i = 0; i <= kLast;) {
        const size_t usable = g_fns.nallocx(i ? 8 * i : 1, 0);
        if (usable < 8 * i || usable == 0 || usable > UINT16_MAX || usable % 8 != 0) return false;
        for (; i <= kLast && 8 * i <= usable; ++i) __atomic_store_n(&g_request_usable[i], uint16_t(usable), __ATOMIC_RELAXED);
    }
    return true;
}

bool set_up() noexcept {
    g_mib_length = sizeof g_mib / sizeof g_mib[0];
    if (g_fns.name_to_mib("thread.deallocatedp", g_mib, &g_mib_length) != 0) return false;
    const uint64_t* freed = thread_freed();
    if (!freed || !check(freed) || !build_table()) {
        std::memset(g_request_usable, 0, sizeof g_request_usable);  // nobody used it: the limit is still 0
        return false;
    }
    __atomic_store_n(&g_request_limit, jemalloc::kTableMax, __ATOMIC_RELEASE);  // the table is complete
    return true;
}

}  // namespace

namespace detail {

void set_up_other_thread() noexcept {
    int state = g_state.load(std::memory_order_acquire);
    if (state == kNone || state == kFailed) return;
    // jemalloc's calls below are the agent's own, whatever they reach.
    ThreadSlot* const saved = tls_slot;
    tls_slot = marker(kAgentThread);
    if (state == kFound && g_state.compare_exchange_strong(state, kChecking, std::memory_order_acquire)) {
        state = set_up() ? kReady : kFailed;
        g_state.store(state, std::memory_order_release);
    }
    while (state == kChecking) {
        sys::pause_ns(sys::kWaitNs);
        state = g_state.load(std::memory_order_acquire);
    }
    if (state == kReady) tls_words.freed = thread_freed();
    tls_slot = saved;
}

void use_switched_jemalloc(NallocxFn nallocx, NameToMibFn name_to_mib, ByMibFn by_mib) noexcept {
    g_fns = {nallocx, name_to_mib, by_mib};
    g_state.store(kFound, std::memory_order_release);
    set_up_other_thread();
}

void find_jemalloc_next(void* real_malloc) noexcept {
    sys::LoadedObject of_malloc, of_fn;
    if (!sys::object_of(real_malloc, of_malloc)) return;
    Functions f{};
    auto next = [&](auto& to, const char* name) {
        to = reinterpret_cast<std::remove_reference_t<decltype(to)>>(dlsym(RTLD_NEXT, name));
        return to && sys::object_of(reinterpret_cast<void*>(to), of_fn) && of_fn.base == of_malloc.base;
    };
    if (!next(f.nallocx, "nallocx") || !next(f.name_to_mib, "mallctlnametomib") || !next(f.by_mib, "mallctlbymib"))
        return;
    g_fns = f;
    g_state.store(kFound, std::memory_order_release);
}

void jemalloc_sizes_after_fork_child() noexcept {
    int checking = kChecking;
    g_state.compare_exchange_strong(checking, kFound, std::memory_order_relaxed);
}

}  // namespace detail
}  // namespace gometrics::agent
