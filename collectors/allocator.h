// The process's allocator, as the memory classes see it: one small interface
// (STYLE.md §13) with a back-end per allocator, chosen once at start-up by
// which allocator the program's malloc really is.
#pragma once

#include <cstdint>
#include <string_view>

namespace gometrics::collect {

// What the allocator holds, in bytes, at one moment. Every figure is the
// allocator's own; the memory family splits `held` into live objects (the
// agent's count) and the rest.
struct AllocatorStats {
    uint64_t held;      // in blocks handed out or cached for reuse (headers, rounding, thread caches included)
    uint64_t free;      // free, and backed by memory
    uint64_t released;  // free, still mapped, not backed (returned with madvise, or never touched)
    uint64_t metadata;  // the allocator's own bookkeeping, beside the headers of live blocks
    uint64_t mapped_blocks;  // live blocks mapped on their own (glibc's mmapped chunks), which carry mapped_header
    // What the allocator itself says the program has in use: glibc's chunks
    // in use (uordblks + hblkhd, so held), jemalloc's stats.allocated (usable
    // sizes; held is its pages).
    uint64_t in_use;
};

struct AllocatorBackend {
    std::string_view name;  // "glibc", "jemalloc", or "unknown"
    // Fills `out`; false when the statistics cannot be read this time (the
    // caller then reports zeros for this snapshot). Null for a back-end that
    // has no statistics: the classes it would fill are left out.
    bool (*read)(AllocatorStats& out) noexcept;
    // Bytes each live block occupies in `held` beyond its usable size, which
    // the memory family counts as metadata: a header word for glibc (see
    // allocator_glibc.cpp), none for jemalloc (its sizes live in its extent
    // metadata, already in stats.metadata).
    uint32_t block_header = 0;
    uint32_t mapped_header = 0;
};

// The back-end for this process, chosen on the first call (the publisher's
// start, after GOMETRICS_ALLOCATOR switched or not).
const AllocatorBackend& allocator();

// Back-ends (allocator_glibc.cpp, allocator_jemalloc.cpp). `mallctl` is
// jemalloc's, found in the object that serves malloc.
using MallctlFn = int (*)(const char*, void*, size_t*, void*, size_t);
AllocatorBackend glibc_backend();
AllocatorBackend jemalloc_backend(MallctlFn mallctl);

}  // namespace gometrics::collect
