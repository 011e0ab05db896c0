// The heap family: the malloc family's counts, summed over thread slots.
#include "heap.h"

#include <algorithm>
#include <array>
#include <cstddef>

#include "agent_facts.h"

namespace gometrics::collect {

namespace {

using agent::load;
using agent::ThreadSlot;

// The published bucket of each exact small size.
constexpr auto kSmallBucket = [] {
    std::array<uint8_t, buckets::kSmallCounts> b{};
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(buckets::size_index(8 * i));
    return b;
}();

// Adds one side (allocations or frees) of a slot's heap counts.
void add_side(const ThreadSlot& s, agent::HeapSide side, uint64_t& bytes, uint64_t* by_size) {
    for (size_t i = 0; i < buckets::kSmallCounts; ++i) {
        const uint64_t n = load(s.small[i].count[side]);
        by_size[kSmallBucket[i]] += n;
        bytes += 8 * i * n;
    }
    for (size_t i = 0; i < buckets::kSizeCounts; ++i) by_size[i] += load(s.other_by_size[i][side]);
    bytes += load(s.other_bytes[side]);
}

// Frees are summed before allocations, with acquire loads. Each thread
// stores its counters with release (slots.h), so for any free we count, the
// allocation of the same block (which happened before the free, through
// whatever synchronisation handed the pointer over) is visible to the later
// allocation pass: in every snapshot frees <= allocs, overall and per size
// bucket, and live objects never underflow.
HeapTotals sum_slots(const Snapshot&) {
    HeapTotals t{};
    agent::for_each_slot([&](const ThreadSlot& s) { add_side(s, agent::kFrees, t.free_bytes, t.free_by_size); });
    agent::for_each_slot([&](const ThreadSlot& s) { add_side(s, agent::kAllocs, t.alloc_bytes, t.alloc_by_size); });
    for (size_t i = 0; i < buckets::kSizeCounts; ++i) {
        t.free_objects += t.free_by_size[i];
        t.alloc_objects += t.alloc_by_size[i];
    }
    // A block from before the attach freed by another thread than the one
    // that freed more of them may tip the difference below zero for a
    // moment, never for good: clamp as the counts do.
    uint64_t freed_before = 0;
    agent::for_each_slot([&](const ThreadSlot& s) { freed_before += load(s.before_attach_freed); });
    const uint64_t baseline = agent::attach_heap_baseline();
    t.before_attach = baseline > freed_before ? baseline - freed_before : 0;
    return t;
}

PerSnapshot<HeapTotals, sum_slots> g_totals;

bool interposed() { return agent::malloc_interposed(); }

// The same sums as terms for readers (metric.h's FoldSink): frees in pass 0
// and allocations in pass 1, the order sum_slots() reads them in.
uint8_t pass(agent::HeapSide side) { return side == agent::kFrees ? 0 : 1; }
uint32_t word_of(size_t byte_offset) { return static_cast<uint32_t>(byte_offset / 8); }
uint32_t small_word(size_t i, agent::HeapSide side) { return word_of(offsetof(ThreadSlot, small) + i * sizeof(agent::SmallSize) + offsetof(agent::SmallSize, count) + side * 8); }
uint32_t other_word(size_t i, agent::HeapSide side) {
    return word_of(offsetof(ThreadSlot, other_by_size)) + uint32_t(i * 2 + side);
}

void fold_bytes(FoldSink& k, agent::HeapSide side, int64_t sign) {
    for (size_t i = 1; i < buckets::kSmallCounts; ++i) k.term(0, small_word(i, side), pass(side), sign * int64_t(8 * i));
    k.term(0, word_of(offsetof(ThreadSlot, other_bytes)) + side, pass(side), sign);
}
// The heap from before an attach: the figure read then is in the remainder,
// the blocks of it freed since are frees (pass 0).
void fold_before_attach(FoldSink& k) { k.term(0, word_of(offsetof(ThreadSlot, before_attach_freed)), 0, -1); }
void fold_objects(FoldSink& k, agent::HeapSide side, int64_t sign) {
    for (size_t i = 0; i < buckets::kSmallCounts; ++i) k.term(0, small_word(i, side), pass(side), sign);
    for (size_t i = 0; i < buckets::kSizeCounts; ++i) k.term(0, other_word(i, side), pass(side), sign);
}
void fold_by_size(FoldSink& k, agent::HeapSide side) {
    for (size_t i = 0; i < buckets::kSmallCounts; ++i) k.term(kSmallBucket[i], small_word(i, side), pass(side), 1);
    for (size_t i = 0; i < buckets::kSizeCounts; ++i) k.term(uint32_t(i), other_word(i, side), pass(side), 1);
}
void fold_allocs_bytes(FoldSink& k) { fold_bytes(k, agent::kAllocs, 1); }
void fold_frees_bytes(FoldSink& k) { fold_bytes(k, agent::kFrees, 1); }
}  // namespace

void fold_live_bytes(FoldSink& k) {
    fold_bytes(k, agent::kAllocs, 1), fold_bytes(k, agent::kFrees, -1);
    fold_before_attach(k);
}

namespace {
void fold_allocs_objects(FoldSink& k) { fold_objects(k, agent::kAllocs, 1); }
void fold_frees_objects(FoldSink& k) { fold_objects(k, agent::kFrees, 1); }
void fold_live_objects(FoldSink& k) { fold_objects(k, agent::kAllocs, 1), fold_objects(k, agent::kFrees, -1); }
void fold_allocs_by_size(FoldSink& k) { fold_by_size(k, agent::kAllocs); }
void fold_frees_by_size(FoldSink& k) { fold_by_size(k, agent::kFrees); }

void allocs_bytes(const Snapshot& s, uint64_t* out) { *out = heap_totals(s).alloc_bytes; }
void allocs_objects(const Snapshot& s, uint64_t* out) { *out = heap_totals(s).alloc_objects; }
void frees_bytes(const Snapshot& s, uint64_t* out) { *out = heap_totals(s).free_bytes; }
void frees_objects(const Snapshot& s, uint64_t* out) { *out = heap_totals(s).free_objects; }
void live_bytes(const Snapshot& s, uint64_t* out) { *out = heap_totals(s).live_bytes(); }
void live_before_attach(const Snapshot& s, uint64_t* out) { *out = heap_totals(s).before_attach; }
void live_objects(const Snapshot& s, uint64_t* out) { *out = heap_totals(s).live_objects(); }

// High-water mark of live bytes over the snapshots taken so far (every
// interval, every reader request, and at exit): a peak between two snapshots
// is missed, which keeps the hot path free of a global maximum. Only the
// single writer computes snapshots, so a plain variable does. A forked child
// starts from its parent's peak, as its heap starts from its parent's.
uint64_t g_live_peak = 0;
void live_peak_bytes(const Snapshot& s, uint64_t* out) {
    g_live_peak = std::max(g_live_peak, heap_totals(s).live_bytes());
    *out = g_live_peak;
}
void allocs_by_size(const Snapshot& s, uint64_t* out) {
    std::copy_n(heap_totals(s).alloc_by_size, buckets::kSizeCounts, out);
}
void frees_by_size(const Snapshot& s, uint64_t* out) {
    std::copy_n(heap_totals(s).free_by_size, buckets::kSizeCounts, out);
}

using layout::kKindFloat64Histogram;
using layout::kKindUint64;

constexpr std::span<const double> kSizeEdges{buckets::kSizeEdges};

constexpr Metric kHeap[] = {
    {"/gc/heap/allocs-by-size:bytes", kKindFloat64Histogram, true, kAggSum,
     "Distribution of heap allocations by usable size in bytes, since the agent loaded.", allocs_by_size, kSizeEdges,
     interposed, fold_allocs_by_size},
    {"/gc/heap/allocs:bytes", kKindUint64, true, kAggSum,
     "Cumulative usable bytes allocated by the malloc family (realloc counts as a free and an allocation).",
     allocs_bytes, {}, interposed, fold_allocs_bytes},
    {"/gc/heap/allocs:objects", kKindUint64, true, kAggSum, "Cumulative count of allocations by the malloc family.",
     allocs_objects, {}, interposed, fold_allocs_objects},
    {"/gc/heap/frees-by-size:bytes", kKindFloat64Histogram, true, kAggSum,
     "Distribution of freed heap allocations by usable size in bytes, since the agent loaded.", frees_by_size,
     kSizeEdges, interposed, fold_frees_by_size},
    {"/gc/heap/frees:bytes", kKindUint64, true, kAggSum, "Cumulative usable bytes freed (free, and the old block of a realloc).",
     frees_bytes, {}, interposed, fold_frees_bytes},
    {"/gc/heap/frees:objects", kKindUint64, true, kAggSum, "Cumulative count of freed allocations.", frees_objects, {},
     interposed, fold_frees_objects},
    {"/gc/heap/live:bytes", kKindUint64, false, kAggSum,
     "Usable bytes of heap allocations not yet freed (a native heap has no GC: live means not freed); for an "
     "attached agent, with /gc/heap/live-before-attach:bytes.",
     live_bytes, {}, interposed, fold_live_bytes},
    {"/gc/heap/live-before-attach:bytes", kKindUint64, false, kAggSum,
     "After gometrics-cli attach: the bytes the allocator said were in use at the attach, less those of the blocks "
     "from before it freed since, in the allocator's own measure (glibc's includes each block's 8-byte header). "
     "Part of /gc/heap/live:bytes. 0 when the agent was preloaded.",
     live_before_attach, {}, interposed, fold_before_attach},
    {"/gc/heap/live-peak:bytes", kKindUint64, false, kAggMax,
     "Highest /gc/heap/live:bytes seen by any snapshot since the agent loaded (snapshots are taken every interval, "
     "on every reader request and at exit).",
     live_peak_bytes, {}, interposed},
    {"/gc/heap/objects:objects", kKindUint64, false, kAggSum, "Heap allocations not yet freed.", live_objects, {}, interposed, fold_live_objects},
    {"/memory/classes/heap/objects:bytes", kKindUint64, false, kAggSum,
     "Memory occupied by live heap objects: their usable bytes, as the agent counts them.", live_bytes, {},
     interposed, fold_live_bytes},
};

}  // namespace

const HeapTotals& heap_totals(const Snapshot& s) { return g_totals.get(s); }

std::span<const Metric> heap_metrics() { return kHeap; }

}  // namespace gometrics::collect
