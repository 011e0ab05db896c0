// The heap family's aggregate, shared with families that build on it
// (memory classes, trace lines).
#pragma once

#include <cstdint>

#include "agent_facts.h"  // buckets.h, with the counters
#include "metric.h"

namespace gometrics::collect {

struct HeapTotals {
    uint64_t alloc_objects, alloc_bytes, free_objects, free_bytes;
    uint64_t alloc_by_size[buckets::kSizeCounts];
    uint64_t free_by_size[buckets::kSizeCounts];
    // An attached agent's heap from before the attach, less what of it was
    // freed since (agent_facts.h); 0 when preloaded.
    uint64_t before_attach;

    // Live = allocs - frees. The sum order in heap.cpp guarantees frees <=
    // allocs for every pointer the agent saw allocated; a free of a pointer
    // allocated before the agent loaded could break that, so clamp at 0.
    uint64_t live_objects() const { return alloc_objects > free_objects ? alloc_objects - free_objects : 0; }
    uint64_t live_bytes() const { return (alloc_bytes > free_bytes ? alloc_bytes - free_bytes : 0) + before_attach; }
};

const HeapTotals& heap_totals(const Snapshot& s);

// Live bytes as fold terms (metric.h): for the metrics that move with them.
void fold_live_bytes(FoldSink& sink);

}  // namespace gometrics::collect
