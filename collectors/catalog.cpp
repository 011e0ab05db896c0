// The one table: the families concatenated and sorted by name.
#include "catalog.h"

#include <fcntl.h>

#include <algorithm>
#include <array>

#include "buffer.h"
#include "proc.h"
#include "procfs.h"

namespace gometrics::collect {

namespace {

// Add a family here when you add a collector.
constexpr std::span<const Metric> (*kFamilies[])() = {
    heap_metrics,
    profiling_metrics,
    threads_metrics,
    sync_metrics,
    cpu_metrics,
    process_metrics,
    sched_metrics,
    memory_metrics,
};

struct Table {
    std::array<const Metric*, kMaxMetrics> sorted{};
    size_t size = 0;

    Table() {
        for (auto family : kFamilies)
            for (const Metric& m : family())
                if (size < kMaxMetrics) sorted[size++] = &m;
        std::sort(sorted.begin(), sorted.begin() + size, [](auto* a, auto* b) { return a->name < b->name; });
    }
};

}  // namespace

void keep_files() noexcept {
    procfs::keep_self_files();
    // Static: start-up may run on a small stack of the program's.
    GOMETRICS_BUFFER static char mountinfo[1 << 16], cgroup[4096];
    const auto mi = sys::read_file(AT_FDCWD, "/proc/self/mountinfo", mountinfo, sizeof mountinfo);
    const auto cg = sys::read_file(AT_FDCWD, "/proc/self/cgroup", cgroup, sizeof cgroup);
    cpu_keep_files(mi.value_or(""), cg.value_or(""));
    memory_keep_files(mi.value_or(""), cg.value_or(""));
}

void drop_files_after_fork() noexcept {
    procfs::drop_self_files();
    cpu_drop_files();
    memory_drop_files();
}

std::span<const Metric* const> catalog() {
    static const Table table;  // thread-safe init; first called from the agent's start-up
    return {table.sorted.data(), table.size};
}

}  // namespace gometrics::collect
