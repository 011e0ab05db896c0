// The sched family: /sched/latencies from every thread's schedstat at
// publish time.
#include "sched_latencies.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <type_traits>
#include <cstring>

#include "buffer.h"
#include "catalog.h"
#include "dirwalk.h"
#include "kept_file.h"
#include "proc.h"
#include "procfs.h"
#include "agent_facts.h"

namespace gometrics::collect::sched {

bool Latencies::Buffer::push(const Entry& e) noexcept {
    if (size == capacity) {
        const size_t grown = data == first ? 4096 / sizeof(Entry) * 16 : capacity * 2;
        void* mem = mmap(nullptr, grown * sizeof(Entry), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED) return false;
        std::memcpy(mem, data, size * sizeof(Entry));
        if (data != first) munmap(data, capacity * sizeof(Entry));
        data = static_cast<Entry*>(mem);
        capacity = grown;
    }
    data[size++] = e;
    return true;
}

Latencies::Entry* Latencies::Buffer::find(int32_t tid) noexcept {
    Entry* end = data + size;
    Entry* it = std::lower_bound(data, end, tid, [](const Entry& e, int32_t t) { return e.tid < t; });
    return it != end && it->tid == tid ? it : nullptr;
}

void Latencies::add(uint64_t wait_ns, uint64_t timeslices) noexcept {
    total_wait_ns_ += wait_ns;
    if (timeslices) hist_[buckets::time_index(wait_ns / timeslices)] += timeslices;
}

void Latencies::live(int32_t tid, uint64_t wait_ns, uint64_t timeslices) noexcept {
    cur_sorted_ = false;
    (void)cur_.push({tid, wait_ns, timeslices});  // no memory: this thread waits for the next snapshot
}

void Latencies::sort_current() noexcept {
    if (cur_sorted_) return;
    std::sort(cur_.data, cur_.data + cur_.size, [](const Entry& a, const Entry& b) { return a.tid < b.tid; });
    // Each listed thread's stretch since its previous reading. A reading
    // below the previous one is a new thread that reused the tid.
    for (size_t i = 0; i < cur_.size; ++i) {
        Entry& e = cur_.data[i];
        const Entry* p = prev_.find(e.tid);
        if (p && e.wait_ns >= p->wait_ns && e.timeslices >= p->timeslices)
            add(e.wait_ns - p->wait_ns, e.timeslices - p->timeslices);
        else
            add(e.wait_ns, e.timeslices);
    }
    cur_sorted_ = true;
}

void Latencies::end() noexcept {
    sort_current();
    std::swap(prev_, cur_);
    cur_.size = 0;
}

}  // namespace gometrics::collect::sched

namespace gometrics::collect {

namespace {

constinit sched::Latencies g_latencies;  // publisher only

// Reads every thread's schedstat (the publisher's own left out, as in
// /sched/threads/total), then the final readings of threads that ended.
// The main thread's file is kept open. Other threads' are opened on the
// kept /proc/self/task (openat), only by the agent's thread in its own
// descriptor table (a new descriptor in the program's, even for a moment,
// takes the number the program's next open or dup expects), and not once
// the program confined itself (openat may be what its filter forbids).
bool update(const Snapshot& s) {
    const procfs::SelfStatus& st = procfs::self_status(s);
    const uint64_t ours = agent::publisher_tid() > 0 ? 1 : 0;
    const bool alone = st.ok && st.threads <= 1 + ours;
    if (alone) {
        char text[128];
        if (const auto t = procfs::read_self(procfs::Self::kSchedstat, text, sizeof text))
            if (const auto ss = sys::parse_schedstat(*t)) g_latencies.live(sys::self_pid(), ss->wait_ns, ss->timeslices);
    }
    const bool may_open = sys::has_private_descriptor_table() && !st.confined;
    const int dir = alone || !may_open ? -1 : procfs::self_dir(procfs::Self::kTaskDir);
    if (dir >= 0) {
        const int publisher = agent::publisher_tid();
        GOMETRICS_BUFFER alignas(8) static char dents[16384];  // publisher only; static: small stacks of the program's
        sys::for_each_dirent(dir, dents, sizeof dents, [&](const char* name) {
            if (name[0] < '0' || name[0] > '9') return;
            const int tid = atoi(name);
            if (tid == publisher) return;
            char path[48], text[128];
            const size_t len = strlen(name);
            if (len + sizeof "/schedstat" > sizeof path) return;
            std::memcpy(path, name, len);
            std::memcpy(path + len, "/schedstat", sizeof "/schedstat");
            // A thread that ended since the listing has no file: skipped.
            if (const auto t = sys::read_file(dir, path, text, sizeof text))
                if (const auto ss = sys::parse_schedstat(*t)) g_latencies.live(tid, ss->wait_ns, ss->timeslices);
        });
    }
    g_latencies.end();
    return true;
}
PerSnapshot<bool, update> g_updated;
static_assert(std::is_trivially_destructible_v<sched::Latencies>, "see sched_latencies.h");

bool have_schedstat() {
    static constinit std::atomic<int> known{-1};  // asked once per metric of the family, and for the sum rule
    int v = known.load(std::memory_order_relaxed);
    if (v < 0) {
        // The main thread's kept file answers for every thread's, without an open.
        char buf[128];
        auto t = procfs::read_self(procfs::Self::kSchedstat, buf, sizeof buf);
        if (!t) t = sys::read_file(AT_FDCWD, "/proc/thread-self/schedstat", buf, sizeof buf);
        known.store(v = t && sys::parse_schedstat(*t), std::memory_order_relaxed);
    }
    return v;
}

void total(const Snapshot& s, uint64_t* out) {
    g_updated.get(s);
    put_f64(out, double(g_latencies.total_wait_ns()) * 1e-9);
}
void hist(const Snapshot& s, uint64_t* out) {
    g_updated.get(s);
    std::copy_n(g_latencies.wait_by_time(), buckets::kTimeCounts, out);
}

using layout::kKindFloat64;
using layout::kKindFloat64Histogram;

constexpr Metric kSched[] = {
    {"/sched/latencies/total:seconds", kKindFloat64, true, kAggSum,
     "Total time threads of the process spent runnable but waiting for a CPU (schedstat), ended threads "
     "included.",
     total, {}, have_schedstat},
    {"/sched/latencies:seconds", kKindFloat64Histogram, true, kAggSum,
     "Estimated distribution of the time threads waited for a CPU before each timeslice: each thread's wait "
     "between snapshots spread evenly over the timeslices it ran.",
     hist, buckets::kTimeEdgesSeconds, have_schedstat},
};

}  // namespace

std::span<const Metric> sched_metrics() { return kSched; }

}  // namespace gometrics::collect
