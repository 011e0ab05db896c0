// The profiler's own footprint, as Go reports its profiling buckets.
#include "catalog.h"
#include "agent_facts.h"

namespace gometrics::collect {

namespace {

// Once per snapshot: /memory/classes/total sums this leaf again (memory.cpp).
uint64_t read_mapped(const Snapshot&) { return agent::profile::mapped_bytes(); }
PerSnapshot<uint64_t, read_mapped> g_mapped;

void buckets_bytes(const Snapshot& s, uint64_t* out) { *out = g_mapped.get(s); }

constexpr Metric kProfiling[] = {
    {"/memory/classes/profiling/buckets:bytes", layout::kKindUint64, false, kAggSum,
     "Memory the agent maps for its sampled heap and contention profiles: stack table, index and sampled-object "
     "table (0 when GOMETRICS_PROFILE_RATE=0 and GOMETRICS_MUTEX_PROFILE_FRACTION=0).",
     buckets_bytes},
};

}  // namespace

std::span<const Metric> profiling_metrics() { return kProfiling; }

}  // namespace gometrics::collect
