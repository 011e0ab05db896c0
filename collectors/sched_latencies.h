// The sched family's bookkeeping, apart from /proc so it can be unit
// tested: per-thread schedstat readings turned into cumulative totals.
#pragma once

#include <cstddef>
#include <cstdint>

#include "agent_facts.h"  // buckets.h, with the counters

namespace gometrics::collect::sched {

// Folds successive readings of every thread's schedstat (time runnable but
// waiting for a CPU, and timeslices run) into cumulative totals that never
// go down, whether threads come or go.
//
// Each snapshot: live() for every listed thread, then end().
// What a thread accumulated since its previous reading is added once; its
// distribution is an estimate: the stretch's wait is spread evenly over
// the timeslices it ran, so `timeslices` samples of wait/timeslices each.
// A thread that ends loses only its last stretch (since its last reading). Publisher thread only; storage
// comes from anonymous mappings, never malloc.
class Latencies {
public:
    constexpr Latencies() : prev_{first_[0]}, cur_{first_[1]} {}
    Latencies(const Latencies&) = delete;
    Latencies& operator=(const Latencies&) = delete;
    // No destructor on purpose: the agent's statics must outlive its own exit
    // path (the final snapshot), and C++ static destructors may run before
    // it (under dlopen they did, and the final snapshot read unmapped
    // buffers). The mappings go with the process.

    void live(int32_t tid, uint64_t wait_ns, uint64_t timeslices) noexcept;
    void end() noexcept;

    uint64_t total_wait_ns() const noexcept { return total_wait_ns_; }
    const uint64_t* wait_by_time() const noexcept { return hist_; }  // buckets::kTimeCounts counts

    struct Entry {
        int32_t tid;
        uint64_t wait_ns, timeslices;
    };

private:
    // A few threads' entries in place: most processes never map more.
    static constexpr size_t kFirst = 8;
    struct Buffer {
        Entry* first;  // the in-place entries this buffer started with
        Entry* data = first;
        size_t size = 0, capacity = kFirst;
        bool push(const Entry& e) noexcept;
        Entry* find(int32_t tid) noexcept;  // binary search: sorted by tid
    };
    void add(uint64_t wait_ns, uint64_t timeslices) noexcept;
    void sort_current() noexcept;

    Entry first_[2][kFirst] = {};
    Buffer prev_, cur_;
    bool cur_sorted_ = false;
    uint64_t total_wait_ns_ = 0;
    uint64_t hist_[buckets::kTimeCounts] = {};
};

}  // namespace gometrics::collect::sched
