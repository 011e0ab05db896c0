// The sync family: contended pthread mutex and rwlock acquisitions, summed
// over thread slots (agent/hooks_locks.cpp times them).
#include <algorithm>
#include <cstddef>

#include "catalog.h"
#include "agent_facts.h"

namespace gometrics::collect {

namespace {

using agent::load;
using agent::ThreadSlot;

struct SyncTotals {
    uint64_t contentions, wait_ns;
    uint64_t wait_by_time[buckets::kTimeCounts];
};

// A thread bumps its histogram, then its wait, then its count (release
// stores); summing in the opposite order with acquire loads means the
// histogram never holds fewer samples than the count says.
SyncTotals sum_slots(const Snapshot&) {
    SyncTotals t{};
    agent::for_each_slot([&](const ThreadSlot& s) { t.contentions += load(s.contentions); });
    agent::for_each_slot([&](const ThreadSlot& s) { t.wait_ns += load(s.wait_ns); });
    agent::for_each_slot([&](const ThreadSlot& s) {
        for (size_t i = 0; i < buckets::kTimeCounts; ++i) t.wait_by_time[i] += load(s.wait_by_time[i]);
    });
    return t;
}

PerSnapshot<SyncTotals, sum_slots> g_totals;

// The same sums as terms for readers, in the same order: count, wait, histogram.
uint32_t word_of(size_t byte_offset) { return static_cast<uint32_t>(byte_offset / 8); }
void fold_contentions(FoldSink& k) { k.term(0, word_of(offsetof(ThreadSlot, contentions)), 0, 1); }
void fold_wait_total(FoldSink& k) { k.term_f(0, word_of(offsetof(ThreadSlot, wait_ns)), 1, 1e-9); }
void fold_wait_hist(FoldSink& k) {
    for (size_t i = 0; i < buckets::kTimeCounts; ++i)
        k.term(uint32_t(i), word_of(offsetof(ThreadSlot, wait_by_time)) + uint32_t(i), 2, 1);
}

void contentions(const Snapshot& s, uint64_t* out) { *out = g_totals.get(s).contentions; }
void wait_total(const Snapshot& s, uint64_t* out) { put_f64(out, double(g_totals.get(s).wait_ns) * 1e-9); }
void wait_hist(const Snapshot& s, uint64_t* out) {
    std::copy_n(g_totals.get(s).wait_by_time, buckets::kTimeCounts, out);
}

using layout::kKindFloat64;
using layout::kKindFloat64Histogram;
using layout::kKindUint64;

constexpr Metric kSync[] = {
    {"/sync/mutex/contentions:events", kKindUint64, true, kAggSum,
     "Contended acquisitions of pthread mutexes and rwlocks (the lock was held when asked for).", contentions,
     {}, nullptr, fold_contentions},
    {"/sync/mutex/wait/total:seconds", kKindFloat64, true, kAggSum,
     "Approximate cumulative time threads spent blocked acquiring a contended pthread mutex or rwlock.",
     wait_total, {}, nullptr, fold_wait_total},
    {"/sync/mutex/wait:seconds", kKindFloat64Histogram, true, kAggSum,
     "Distribution of the time each contended pthread mutex or rwlock acquisition waited.", wait_hist,
     buckets::kTimeEdgesSeconds, nullptr, fold_wait_hist},
};

}  // namespace

std::span<const Metric> sync_metrics() { return kSync; }

}  // namespace gometrics::collect
