// The one table: the families concatenated and sorted by name.
#include "catalog.h"

#include <algorithm>
#include <array>

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
    cpu_keep_files();
    memory_keep_files();
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
