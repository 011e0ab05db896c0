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
constinit bool g_size_table_retry = false;
}  // namespace detail

namespace {

using namespace detail;

// The size of the block a request gets: nallocx (jemalloc, tcmalloc) or
// mi_good_size (mimalloc); jemalloc's count of a thread's freed bytes
// through its mallctl, when there (both null elsewhere).
struct Functions {
    NallocxFn nallocx;
    GoodSizeFn good_size;
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

constinit bool g_counts_freed = false;  // jemalloc's "thread.deallocatedp" serves

size_t usable_for(size_t n) noexcept { return g_fns.nallocx ? g_fns.nallocx(n, 0) : g_fns.good_size(n); }

// The calling thread's "thread.deallocatedp": a pointer to its own counter.
const uint64_t* thread_freed() noexcept {
    uint64_t* counter = nullptr;
    size_t size = sizeof counter;
    if (g_fns.by_mib(g_mib, g_mib_length, &counter, &size, nullptr, 0) != 0 || size != sizeof counter) return nullptr;
    return counter;
}

// Whether the allocator gives what the hooks will assume: for each request,
// the usable size its size function says, and (freed: jemalloc's counter)
// a free moves the thread's counter by that. kNotYet: it sizes its blocks 0,
// as tcmalloc does until its own constructor has run (the first claim may
// come from libstdc++'s, earlier).
enum Check { kPass, kNotYet, kFail };
Check check(const uint64_t* freed) noexcept {
    const RealFunctions& real = g_real;
    for (size_t n : {size_t{0}, size_t{1}, size_t{8}, size_t{9}, size_t{24}, size_t{100}, size_t{129}, size_t{1000}, size_t{1016},
                     size_t{1024}, size_t{1025}, size_t{4000}, size_t{8192}, size_t{14337}, jemalloc::kTableMax}) {
        for (bool zeroed : {false, true}) {
            void* p = zeroed ? real.calloc(n, 1) : real.malloc(n);
            if (!p) return kFail;
            const size_t usable = real.malloc_usable_size(p);
            const uint64_t before = freed ? *freed : 0;
            real.free(p);
            if (usable == 0) return kNotYet;
            // malloc(0) is malloc(1) to jemalloc, whose nallocx(0) is undefined.
            if (usable != usable_for(n ? n : 1) || (freed && *freed - before != usable)) return kFail;
        }
    }
    return kPass;
}

// Size classes only grow with the request, and a class's size is its own
// class: every request from one class boundary to the next gets that class.
// Request 0 is request 1's (check()).
bool build_table() noexcept {
    constexpr size_t kLast = jemalloc::kTableMax / 8;
    for (size_t i = 0; i <= kLast;) {
        const size_t usable = usable_for(i ? 8 * i : 1);
        if (usable < 8 * i || usable == 0 || usable > UINT16_MAX || usable % 8 != 0) return false;
        for (; i <= kLast && 8 * i <= usable; ++i) __atomic_store_n(&g_request_usable[i], uint16_t(usable), __ATOMIC_RELAXED);
    }
    return true;
}

// A check the allocator was not ready for is tried again from the hooks'
// asking path (size_table_retry), this many times at most.
constinit int g_tries_left = 1000;

// The state to go to: kReady, kFailed, or kFound again (to be retried).
State set_up() noexcept {
    const uint64_t* freed = nullptr;
    if (g_fns.name_to_mib) {
        g_mib_length = sizeof g_mib / sizeof g_mib[0];
        if (g_fns.name_to_mib("thread.deallocatedp", g_mib, &g_mib_length) != 0) return kFailed;
        if (!(freed = thread_freed())) return kFailed;
    }
    g_counts_freed = freed != nullptr;
    const Check checked = check(freed);
    if (checked == kNotYet && --g_tries_left > 0) {
        __atomic_store_n(&g_size_table_retry, true, __ATOMIC_RELAXED);
        return kFound;
    }
    __atomic_store_n(&g_size_table_retry, false, __ATOMIC_RELAXED);
    if (checked != kPass || !build_table()) {
        std::memset(g_request_usable, 0, sizeof g_request_usable);  // nobody used it: the limit is still 0
        return kFailed;
    }
    __atomic_store_n(&g_request_limit, jemalloc::kTableMax, __ATOMIC_RELEASE);  // the table is complete
    return kReady;
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
        state = set_up();
        g_state.store(state, std::memory_order_release);
    }
    while (state == kChecking) {
        sys::pause_ns(sys::kWaitNs);
        state = g_state.load(std::memory_order_acquire);
    }
    if (state == kReady && g_counts_freed) tls_words.freed = thread_freed();
    tls_slot = saved;
}

void use_switched_jemalloc(NallocxFn nallocx, NameToMibFn name_to_mib, ByMibFn by_mib) noexcept {
    g_fns = {nallocx, nullptr, name_to_mib, by_mib};
    g_state.store(kFound, std::memory_order_release);
    set_up_other_thread();
}

void find_size_functions(void* real_malloc) noexcept {
    sys::LoadedObject of_malloc, of_fn;
    if (!sys::object_of(real_malloc, of_malloc)) return;
    auto next = [&](auto& to, const char* name) {
        to = reinterpret_cast<std::remove_reference_t<decltype(to)>>(dlsym(RTLD_NEXT, name));
        if (to && sys::object_of(reinterpret_cast<void*>(to), of_fn) && of_fn.base == of_malloc.base) return true;
        to = nullptr;
        return false;
    };
    Functions f{};
    if (next(f.nallocx, "nallocx")) {
        // jemalloc's counters come with its mallctl; tcmalloc has nallocx alone.
        if (!next(f.name_to_mib, "mallctlnametomib") || !next(f.by_mib, "mallctlbymib")) f.name_to_mib = nullptr;
    } else if (!next(f.good_size, "mi_good_size")) {
        return;
    }
    g_fns = f;
    g_state.store(kFound, std::memory_order_release);
}

void jemalloc_sizes_after_fork_child() noexcept {
    int checking = kChecking;
    g_state.compare_exchange_strong(checking, kFound, std::memory_order_relaxed);
}

}  // namespace detail
}  // namespace gometrics::agent
