// How a collector declares a metric: once, next to the code that computes
// it (Go's allDesc, jemalloc's X-macro lists). The catalogue of all families
// drives the segment's Description table, `gometrics-catalog` (the README's
// metric map) and the table tests.
#pragma once

#include <bit>
#include <cstdint>
#include <span>
#include <string_view>

#include "layout.h"

namespace gometrics::collect {

// One publication. Collectors cache their expensive aggregates per
// snapshot (see PerSnapshot) so each is computed at most once.
struct Snapshot {
    uint64_t seq;            // 1, 2, 3... for this process
    uint64_t time_ns;        // CLOCK_REALTIME
    uint64_t monotonic_ns;   // CLOCK_MONOTONIC
};

// Writes the value: one word for a scalar (a uint64, or a double's bits via
// put_f64), or bounds.size()-1 counts for a histogram.
using ComputeFn = void (*)(const Snapshot&, uint64_t* out);

// How a value is a sum of thread-slot words (layout::LiveHeader), for the
// metrics readers can fold live: one term per slot word that counts towards
// word `word` of the value, read in pass order (see the header).
struct FoldSink {
    virtual void term(uint32_t word, uint32_t slot_word, uint8_t pass, int64_t weight) = 0;
    virtual void term_f(uint32_t word, uint32_t slot_word, uint8_t pass, double weight) = 0;

protected:
    ~FoldSink() = default;
};

// How the values of several processes combine (layout::Aggregation, in
// the segment's Description). The rule the rows follow:
// - kAggSum: every cumulative metric, and gauges that are an amount the
//   process holds now (bytes, objects, threads, descriptors): a tree holds
//   the sum.
// - kAggMax: gauges that are a high-water mark or a duration of the process
//   (a peak, the uptime): the tree's is at least the largest.
// - kAggNone: gauges that are a setting or limit of the process (CPUs it
//   may use, memory and descriptor limits): a limit of three processes is
//   not three times one; readers show it only where all agree.
using layout::kAggMax;
using layout::kAggNone;
using layout::kAggSum;

struct Metric {
    std::string_view name;  // "/path:unit", Go's format
    layout::Kind kind;
    bool cumulative;
    layout::Aggregation aggregation;  // never kAggUnknown (a table test checks)
    std::string_view description;  // one sentence, what it means for a native process
    ComputeFn compute;
    std::span<const double> bounds = {};  // histogram edges, fixed for the process's life
    // Decided once at start-up; a metric that is unavailable is left out of
    // the segment, so readers see it as unsupported (Bad), never as zero.
    bool (*available)() = nullptr;
    // Set for a value that is exactly a sum of slot words: readers then fold
    // it themselves, at the moment they read (fresh without a snapshot).
    void (*fold)(FoldSink& sink) = nullptr;
};

inline void put_f64(uint64_t* out, double v) { *out = std::bit_cast<uint64_t>(v); }

// A per-snapshot cache for an aggregate that several metrics share (Go's
// statAggregate.ensure): computed on first use within a snapshot. Only the
// publisher thread uses these.
// Keyed on the time as well as the number: a forked child numbers its
// snapshots from 1 again and must not reuse its parent's cached values.
template <class T, T (*Compute)(const Snapshot&)>
class PerSnapshot {
public:
    const T& get(const Snapshot& s) {
        if (seq_ != s.seq || time_ != s.monotonic_ns) {
            value_ = Compute(s);
            seq_ = s.seq;
            time_ = s.monotonic_ns;
        }
        return value_;
    }

private:
    uint64_t seq_ = 0, time_ = 0;
    T value_{};
};

}  // namespace gometrics::collect
