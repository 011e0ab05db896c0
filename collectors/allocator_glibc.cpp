// glibc's back-end: mallinfo2 (every arena, under each arena's lock: read at
// publish time only; its cost with many arenas is in scripts/bench.sh), and
// the residency of the main arena's brk heap for what malloc_trim released.
#include <fcntl.h>
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "allocator.h"
#include "buffer.h"
#include "procfs.h"

namespace gometrics::collect {

namespace {

// start_brk, field 47 of /proc/self/stat: where the brk heap begins.
uintptr_t read_start_brk() {
    if (const uintptr_t at = procfs::start_brk()) return at;
    GOMETRICS_BUFFER static char buf[2048];  // static: start-up may run on a small stack of the program's
    const auto text = procfs::read_self(procfs::Self::kStat, buf, sizeof buf);
    return text ? sys::stat_field(*text, 47).value_or(0) : 0;
}

// Bytes of the brk heap [start_brk, break) that no physical page backs:
// pages malloc_trim gave back with madvise, and the top never touched.
// One mincore per 256 MiB; the publisher is the only caller.
uint64_t brk_heap_nonresident() noexcept {
    static const uintptr_t lo = read_start_brk();
    GOMETRICS_BUFFER static unsigned char vec[1 << 16];
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t hi = (reinterpret_cast<uintptr_t>(sbrk(0)) + page - 1) & ~(page - 1);
    if (lo == 0 || lo % page || hi <= lo) return 0;
    uint64_t missing = 0;
    for (uintptr_t at = lo; at < hi;) {
        const size_t pages = std::min<uintptr_t>((hi - at) / page, sizeof vec);
        if (mincore(reinterpret_cast<void*>(at), pages * page, vec) != 0) return 0;
        for (size_t i = 0; i < pages; ++i) missing += !(vec[i] & 1);
        at += pages * page;
    }
    return missing * page;
}

// uordblks: bytes in chunks in use, which for glibc includes the chunks
// parked in the per-thread tcache, each chunk's header and a secondary
// arena's own header (heap_info, malloc_state: glibc computes uordblks as
// the arena's size minus its free space, so arena - uordblks - fordblks is
// always 0 and the arena headers cannot be told apart); hblkhd and hblks:
// mmapped chunks, their bytes and their number; fordblks: free chunks,
// fastbins and the top included.
//
// A chunk in use of chunksize c spans c bytes of the arena: the size word
// (8 bytes) and c - 8 usable (the next chunk's prev_size word is ours while
// we are in use), so malloc_usable_size is c - 8; an mmapped chunk keeps
// both words, c - 16 usable. The agent counts usable sizes, so the headers
// of the live blocks are 8 bytes per block and 16 per mmapped one.
constexpr uint32_t kChunkHeader = 8, kMappedChunkHeader = 16;

bool read_glibc(AllocatorStats& out) noexcept {
    const struct mallinfo2 mi = mallinfo2();
    out.held = mi.uordblks + mi.hblkhd;
    out.in_use = out.held;
    out.metadata = 0;
    out.mapped_blocks = mi.hblks;
    // Non-resident pages are counted against free space first: a live block
    // is normally touched. Clamped: the heap can move between the two reads.
    out.released = std::min<uint64_t>(brk_heap_nonresident(), mi.fordblks);
    out.free = mi.fordblks - out.released;
    return true;
}

}  // namespace

AllocatorBackend glibc_backend() { return {"glibc", read_glibc, kChunkHeader, kMappedChunkHeader}; }

}  // namespace gometrics::collect
