// jemalloc's per-thread byte counters as the hooks' size source; see
// thread_counters.h.
#include "thread_counters.h"

#include <dlfcn.h>

#include "loaded_object.h"
#include "real.h"
#include "slots.h"

namespace gometrics::agent {

namespace {

constinit MallctlFn g_mallctl = nullptr;  // null: counters off

MallctlFn find_mallctl() {
    if (MallctlFn m = switched_mallctl()) return m;
    if (detail::g_glibc_chunks) return nullptr;  // glibc's malloc: it has no such counters
    sys::LoadedObject object;
    if (!sys::object_of(reinterpret_cast<void*>(detail::g_real.malloc), object)) return nullptr;
    // The executable itself has an empty path: dlopen(NULL) is its handle.
    void* h = dlopen(*object.path ? object.path : nullptr, RTLD_LAZY | RTLD_NOLOAD);
    if (!h) return nullptr;
    auto m = reinterpret_cast<MallctlFn>(dlsym(h, "mallctl"));
    dlclose(h);
    return m;
}

bool read_pointers(MallctlFn m, uint64_t*& allocated, uint64_t*& deallocated) {
    size_t len = sizeof allocated;
    if (m("thread.allocatedp", &allocated, &len, nullptr, 0) != 0 || len != sizeof allocated || !allocated)
        return false;
    len = sizeof deallocated;
    return m("thread.deallocatedp", &deallocated, &len, nullptr, 0) == 0 && len == sizeof deallocated &&
           deallocated;
}

}  // namespace

void thread_counters_init() noexcept {
    MallctlFn m = find_mallctl();
    uint64_t *allocated = nullptr, *deallocated = nullptr;
    if (!m || !read_pointers(m, allocated, deallocated)) return;
    // Decided from what happens: two sizes, each must move both counters by
    // exactly the usable size the allocator reports.
    const RealFunctions& real = detail::g_real;
    for (size_t n : {24, 3000}) {
        const uint64_t a0 = *allocated;
        void* p = real.malloc(n);
        if (!p) return;
        const uint64_t grew = *allocated - a0, usable = real.malloc_usable_size(p);
        const uint64_t d0 = *deallocated;
        real.free(p);
        if (grew != usable || *deallocated - d0 != usable) return;
    }
    g_mallctl = m;
}

void thread_counters_claim(ThreadSlot* s) noexcept {
    s->counters_allocated = nullptr;
    s->counters_deallocated = nullptr;
    s->counters_last_allocated = kCountersUnprimed;
    if (!g_mallctl) return;
    // mallctl may set up jemalloc's state for this thread: not the program's.
    ThreadSlot* const saved = detail::tls_slot;
    detail::tls_slot = detail::marker(detail::kAgentThread);
    uint64_t *allocated = nullptr, *deallocated = nullptr;
    if (read_pointers(g_mallctl, allocated, deallocated)) {
        s->counters_allocated = allocated;
        s->counters_deallocated = deallocated;
    }
    detail::tls_slot = saved;
}

void thread_counters_claim_word(ThreadSlot* word) noexcept {
    const auto m = reinterpret_cast<uintptr_t>(word);
    if (m == detail::kSlowSlot)
        thread_counters_claim(detail::tls_slow_slot);
    else if (m > detail::kMaxMarker)
        thread_counters_claim(word);
}

}  // namespace gometrics::agent
