// Summarising `exec`; see exec_summary.h.
#include "exec_summary.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "common.h"
#include "emitter.h"
#include "units.h"

namespace gometrics::cli {

namespace {

std::string tree_cpu(const rusage& ru) {
    const double user = double(ru.ru_utime.tv_sec) + double(ru.ru_utime.tv_usec) * 1e-6;
    const double sys = double(ru.ru_stime.tv_sec) + double(ru.ru_stime.tv_usec) * 1e-6;
    return fmt::format("{} (user {}, system {})", human(user + sys, "seconds"), human(user, "seconds"),
                       human(sys, "seconds"));
}

}  // namespace

void print_summary(const std::vector<std::string>& command, const Ended& e, const Tree& tree, const Report& agg, const rusage& ru) {
    const size_t n = tree.processes().size();
    const auto value = [&](std::string_view name) -> std::string {
        const Value* v = agg.find(name);
        if (!v) return "-";
        const double d = v->kind == ValueKind::Uint64 ? double(v->u64) : v->kind == ValueKind::Float64 ? v->f64 : NAN;
        return std::isnan(d) ? "-" : human(d, unit_of(name));
    };
    // Over several processes, what a value is of, as the metric aggregates.
    const std::vector<ReportMetric> all = agg.all();
    const auto of = [&](std::string_view name) -> std::string_view {
        const auto m = std::find_if(all.begin(), all.end(), [&](const ReportMetric& r) { return r.desc.name == name; });
        if (n < 2 || m == all.end()) return "";
        const Aggregation a = aggregation_of(m->desc);
        return a == Aggregation::Sum ? " (all processes)" : a == Aggregation::Max ? " (largest process)" : "";
    };
    size_t complete = 0;
    for (const auto& [pid, t] : tree.processes()) complete += t.source == "exit-report";
    std::string how = e.signal ? fmt::format("was killed by signal {} ({}), status {}", e.signal,
                                             strsignal(e.signal), e.status)
                               : fmt::format("exited with status {}", e.status);
    eprint("gometrics: {} {}; {} instrumented process{}{}", command[0], how, n, n == 1 ? "" : "es",
           complete == n ? "" : fmt::format(" ({} without an exit report)", n - complete));
    eprint("  allocations   {} objects, {}", value("/gc/heap/allocs:objects"), value("/gc/heap/allocs:bytes"));
    eprint("  live heap     peak {}{}, at exit {}{}", value(kLivePeak), of(kLivePeak),
           value("/gc/heap/live:bytes"), of("/gc/heap/live:bytes"));
    eprint("  threads       {} created", value("/sched/threads-created:threads"));
    eprint("  mutex wait    {}", value("/sync/mutex/wait/total:seconds"));
    eprint("  cpu           {}", tree_cpu(ru));
    eprint("  peak rss      {}{}", value(kRssPeak), of(kRssPeak));
}

nlohmann::ordered_json metrics_json(const std::vector<Description>& descs, const std::vector<Value>& values) {
    auto arr = nlohmann::ordered_json::array();
    for (size_t i = 0; i < descs.size(); ++i)
        arr.push_back({{"name", descs[i].name}, {"kind", to_string(descs[i].kind)},
                       {"cumulative", descs[i].cumulative},
                       {"aggregation", to_string(descs[i].aggregation)}, {"value", value_to_json(values[i])}});
    return arr;
}

}  // namespace gometrics::cli
