// The memory family: Go's /memory/classes from the allocator's own figures
// (allocator.h) and the agent's counts, and /memory/limit:bytes.
//
// The classes of one snapshot are computed together, once (PerSnapshot), so
// /memory/classes/total:bytes is exactly the sum of the other leaves in
// every snapshot. Two sources race: the agent's live bytes (heap/objects)
// and the allocator's statistics are read a few microseconds apart while the
// program allocates, so heap/unused = held - objects is clamped at zero.
// The total is summed from the clamped leaves, so the sum rule holds anyway.
#include <fcntl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>

#include "agent_facts.h"
#include "allocator.h"
#include "buffer.h"
#include "catalog.h"
#include "cgroup.h"
#include "clocks.h"
#include "heap.h"
#include "kept_file.h"
#include "metric.h"
#include "procfs.h"

namespace gometrics::collect {

namespace {

struct Classes {
    uint64_t objects, unused, free, released, metadata, other;
    uint64_t foreign;  // the leaves other families publish (os-stacks, profiling/buckets)
    uint64_t total;
};

bool have_allocator_stats() { return allocator().read != nullptr; }

// Memory the agent holds for itself: thread slots, the publisher's state,
// values buffer and segment, and the bootstrap arena.
uint64_t agent_bytes() { return agent::own_bytes(); }

// The allocator's figures, at most 1% of the time when they are costly.
// mallinfo2 walks every free chunk of every arena, each under its arena's
// lock: 16 fragmented arenas (160,000 free chunks) took 110 ms a call in
// scripts/bench.sh, while the program's mallocs on each arena waited. A read
// that costs under 1 ms of CPU is made for every snapshot (fresh figures,
// which the tests rely on); after two costlier ones in a row, the later
// taking t, the same figures serve until 100 t has passed. Two: a first read
// pays for cold code and page faults, and one slow read of a small heap would
// otherwise leave its figures stale beside the exact, fresh object counts.
// CPU time, not wall time: a publisher that was merely preempted did not
// cost the program anything.
AllocatorStats allocator_stats(const Snapshot& s) {
    static AllocatorStats last{};
    static uint64_t next_ns = 0;
    static bool was_costly = false;
    const auto read = allocator().read;
    // Confined: the back-end's brk and mincore may be what the filter forbids.
    if (!read || s.monotonic_ns < next_ns || agent::crashing() || procfs::self_status(s).confined) return last;
    const uint64_t t0 = sys::clock_ns(CLOCK_THREAD_CPUTIME_ID);
    if (!read(last)) last = {};
    const int64_t took = static_cast<int64_t>(sys::clock_ns(CLOCK_THREAD_CPUTIME_ID) - t0);
    const bool costly = took >= 1000000;
    next_ns = costly && was_costly ? s.monotonic_ns + 100 * static_cast<uint64_t>(took) : 0;
    was_costly = costly;
    return last;
}

// The /memory/classes leaves other families publish (os-stacks, profiling
// buckets...), found once in the catalogue: only those in the segment, so
// the sum rule holds for what readers see. The total computes each again,
// so each must give one value per snapshot (PerSnapshot), as ours do.
struct Foreign {
    const Metric* leaves[16];
    size_t count = 0;
};

const Foreign& foreign_leaves() {
    static const Foreign f = [] {
        Foreign out;
        // This family's leaves, and the heap family's (objects: computed here from the same totals).
        const auto in = [](std::span<const Metric> family, const Metric* m) {
            return std::any_of(family.begin(), family.end(), [&](const Metric& row) { return &row == m; });
        };
        for (const Metric* m : catalog()) {
            const bool ours = in(memory_metrics(), m) || in(heap_metrics(), m);
            if (ours || !m->name.starts_with("/memory/classes/") || m->kind != layout::kKindUint64) continue;
            if ((!m->available || m->available()) && out.count < std::size(out.leaves)) out.leaves[out.count++] = m;
        }
        return out;
    }();
    return f;
}

Classes compute_classes(const Snapshot& s) {
    Classes c{};
    const bool counted = agent::malloc_interposed();
    c.objects = counted ? heap_totals(s).live_bytes() : 0;
    const AllocatorStats a = allocator_stats(s);
    // The headers of the live blocks are the allocator's bookkeeping: known
    // exactly from the live object count (and, for glibc, how many of them
    // are mmapped), taken out of what the blocks hold beyond their objects.
    const uint64_t live = counted ? heap_totals(s).live_objects() : 0;
    const uint64_t mapped = std::min(a.mapped_blocks, live);
    const AllocatorBackend& b = allocator();
    const uint64_t spare = a.held > c.objects ? a.held - c.objects : 0;
    const uint64_t headers = std::min(spare, (live - mapped) * b.block_header + mapped * b.mapped_header);
    c.unused = spare - headers;
    c.free = a.free;
    c.released = a.released;
    c.metadata = a.metadata + headers;
    c.other = agent_bytes();
    const Foreign& f = foreign_leaves();
    for (size_t i = 0; i < f.count; ++i) {
        uint64_t v = 0;
        f.leaves[i]->compute(s, &v);
        c.foreign += v;
    }
    c.total = c.objects + c.unused + c.free + c.released + c.metadata + c.other + c.foreign;
    return c;
}

PerSnapshot<Classes, compute_classes> g_classes;

void unused(const Snapshot& s, uint64_t* out) { *out = g_classes.get(s).unused; }
void free_bytes(const Snapshot& s, uint64_t* out) { *out = g_classes.get(s).free; }
void released(const Snapshot& s, uint64_t* out) { *out = g_classes.get(s).released; }
void metadata(const Snapshot& s, uint64_t* out) { *out = g_classes.get(s).metadata; }
void other(const Snapshot& s, uint64_t* out) { *out = g_classes.get(s).other; }
void total(const Snapshot& s, uint64_t* out) { *out = g_classes.get(s).total; }

// ---- /memory/limit:bytes ----

constexpr uint64_t kNoLimit = std::numeric_limits<int64_t>::max();  // Go's "no limit" for gomemlimit

// The limit files on the way from the process's cgroup to the root of its
// hierarchy, found and kept at start-up: a process rarely changes cgroups,
// and the agent opens nothing later.
constexpr size_t kMaxLevels = 8;
constinit sys::KeptFile g_limit_files[kMaxLevels];

void keep_limit_files(std::string_view mountinfo, std::string_view cgroup) {
    GOMETRICS_BUFFER static char file[1100];  // static: start-up may run on a small stack
    auto d = sys::find_cgroup(mountinfo, cgroup, "memory");
    if (!d) return;
    const char* const name = d->v1 ? "memory.limit_in_bytes" : "memory.max";
    for (size_t kept = 0; kept < kMaxLevels;) {
        if (sys::cgroup_file_path(*d, name, file, sizeof file) > 0 && g_limit_files[kept].open(AT_FDCWD, file, O_RDONLY) == 0)
            ++kept;
        if (d->path.empty()) break;  // the hierarchy's root (as this process sees it) done
        d->path = d->path.substr(0, d->path.rfind('/'));
    }
}

// The tightest of those limits.
uint64_t cgroup_limit() {
    uint64_t limit = kNoLimit;
    for (sys::KeptFile& f : g_limit_files) {
        char value[64];
        const auto text = f.read(value, sizeof value);
        if (const auto v = text ? sys::parse_memory_limit(*text) : std::nullopt) limit = std::min(limit, *v);
    }
    return limit;
}

// Limits change rarely: read at most once a second (a reader asking for
// fresh snapshots in a loop must not turn it into a stream of reads).
void limit(const Snapshot& s, uint64_t* out) {
    static uint64_t value = 0, next_ns = 0;
    if (value == 0 || (s.monotonic_ns >= next_ns && !procfs::self_status(s).confined)) {
        value = cgroup_limit();
        rlimit as{};
        if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) value = std::min<uint64_t>(value, as.rlim_cur);
        next_ns = s.monotonic_ns + sys::kNsPerSec;
    }
    *out = value;
}

using layout::kKindUint64;

constexpr Metric kMemory[] = {
    {"/memory/classes/heap/free:bytes", kKindUint64, false, kAggSum,
     "Free memory the allocator holds, still backed by physical pages (glibc: free chunks; jemalloc: dirty pages).",
     free_bytes, {}, have_allocator_stats},
    {"/memory/classes/heap/released:bytes", kKindUint64, false, kAggSum,
     "Free memory the allocator keeps mapped but not backed: returned with madvise (malloc_trim, jemalloc purging, "
     "muzzy pages) or never touched.",
     released, {}, have_allocator_stats},
    {"/memory/classes/heap/unused:bytes", kKindUint64, false, kAggSum,
     "Memory the allocator holds in blocks for objects but neither occupied by live objects nor their headers: size "
     "rounding, blocks cached for reuse (glibc's tcache, jemalloc's thread caches), fragmentation.",
     unused, {}, have_allocator_stats},
    {"/memory/classes/metadata/other:bytes", kKindUint64, false, kAggSum,
     "The allocator's own bookkeeping (glibc: the size header of each live block, 8 bytes, 16 for an mmapped one; "
     "jemalloc: stats.metadata).", metadata, {},
     have_allocator_stats},
    {"/memory/classes/other:bytes", kKindUint64, false, kAggSum,
     "Memory the agent holds for itself: thread slots, its published segment and buffers.", other},
    {"/memory/classes/total:bytes", kKindUint64, false, kAggSum,
     "All memory in the other /memory/classes, exactly their sum in each snapshot.", total, {}, nullptr,
     fold_live_bytes},
    {"/memory/limit:bytes", kKindUint64, false, kAggNone,
     "The tightest of the cgroup memory limit and RLIMIT_AS, or 9223372036854775807 (Go's no-limit value) when "
     "there is none.",
     limit},
};

}  // namespace

void memory_keep_files(std::string_view mountinfo, std::string_view cgroup) noexcept {
    keep_limit_files(mountinfo, cgroup);
}
void memory_drop_files() noexcept {
    for (sys::KeptFile& f : g_limit_files) f.close();
}

std::span<const Metric> memory_metrics() { return kMemory; }

}  // namespace gometrics::collect
