// jemalloc's back-end: mallctl after an "epoch" refresh (which merges the
// arenas' statistics under jemalloc's control mutex: publish time only).
//   held     = stats.active: pages backing live objects, thread caches included
//   free     = stats.arenas.<all>.pdirty pages: freed, not yet purged, resident
//   released = stats.retained + pmuzzy pages: purged or never touched, still
//              mapped (muzzy pages were given back with MADV_FREE; jemalloc's
//              own stats.resident leaves them out too)
//   metadata = stats.metadata: base allocations, extent and radix-tree nodes
//   in_use   = stats.allocated less the thread caches' blocks
//              (stats.arenas.<all>.tcache_bytes): usable bytes of the
//              blocks the program holds
#include <atomic>
#include <cstdint>

#include "allocator.h"

namespace gometrics::collect {

namespace {

constinit std::atomic<MallctlFn> g_mallctl{nullptr};
constinit size_t g_page = 4096;

template <class T>
bool get(const char* name, T& v) noexcept {
    size_t sz = sizeof v;
    return g_mallctl.load(std::memory_order_relaxed)(name, &v, &sz, nullptr, 0) == 0 && sz == sizeof v;
}

bool refresh() noexcept {
    uint64_t epoch = 1;
    size_t sz = sizeof epoch;
    return g_mallctl.load(std::memory_order_relaxed)("epoch", &epoch, &sz, &epoch, sizeof epoch) == 0;
}

bool read_jemalloc(AllocatorStats& out) noexcept {
    size_t active, allocated, metadata, retained, pdirty, pmuzzy;
    if (!refresh() || !get("stats.active", active) || !get("stats.allocated", allocated) || !get("stats.metadata", metadata) ||
        !get("stats.retained", retained) || !get("stats.arenas.4096.pdirty", pdirty) ||
        !get("stats.arenas.4096.pmuzzy", pmuzzy))
        return false;
    out.held = active;
    size_t cached = 0;
    out.in_use = allocated - (get("stats.arenas.4096.tcache_bytes", cached) && cached <= allocated ? cached : 0);
    out.free = uint64_t{pdirty} * g_page;
    out.released = retained + uint64_t{pmuzzy} * g_page;
    out.metadata = metadata;
    return true;
}

}  // namespace

AllocatorBackend jemalloc_backend(MallctlFn mallctl) {
    g_mallctl.store(mallctl, std::memory_order_relaxed);
    size_t page = 0;
    AllocatorStats probe{};
    // A jemalloc built without statistics (--disable-stats) answers ENOENT:
    // then the classes it would fill are left out, not read as zero.
    if (!get("arenas.page", page) || page == 0 || (g_page = page, !read_jemalloc(probe))) return {"jemalloc", nullptr};
    return {"jemalloc", read_jemalloc};
}

}  // namespace gometrics::collect
