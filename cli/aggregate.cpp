// Combining the metrics of several processes; see aggregate.h.
#include "aggregate.h"

#include <algorithm>
#include <map>
#include <string_view>

namespace gometrics::cli {

namespace {

// The last element of the path ("live-peak" of "/gc/heap/live-peak:bytes").
std::string_view leaf(std::string_view name) {
    name = name.substr(0, name.rfind(':'));
    return name.substr(name.rfind('/') + 1);
}

bool same(const Value& a, const Value& b) {
    if (a.kind != b.kind) return false;
    switch (a.kind) {
        case ValueKind::Uint64: return a.u64 == b.u64;
        case ValueKind::Float64: return a.f64 == b.f64;
        case ValueKind::Float64Histogram: return a.hist.buckets == b.hist.buckets && a.hist.counts == b.hist.counts;
        case ValueKind::Bad: break;
    }
    return true;
}

}  // namespace

Aggregation aggregation_of(const Description& d) {
    if (d.aggregation != Aggregation::Unknown) return d.aggregation;
    if (d.cumulative) return Aggregation::Sum;
    const std::string_view l = leaf(d.name);
    if (l.find("peak") != l.npos) return Aggregation::Max;
    if (l.find("limit") != l.npos) return Aggregation::None;
    return Aggregation::Sum;
}

std::vector<std::pair<Description, Value>> aggregate(const std::vector<const Metrics*>& processes) {
    struct Acc {
        Description desc;
        Value value;
        bool differ = false;  // None (or a histogram that cannot add): the processes disagree
    };
    std::map<std::string, Acc> by_name;
    for (const Metrics* m : processes) {
        for (size_t i = 0; i < m->descs.size() && i < m->values.size(); ++i) {
            const Description& d = m->descs[i];
            const Value& v = m->values[i];
            auto [it, fresh] = by_name.try_emplace(d.name, Acc{d, v});
            if (fresh) continue;
            Acc& acc = it->second;
            // A newer agent says what an older one did not: the first process that says wins.
            if (acc.desc.aggregation == Aggregation::Unknown) acc.desc.aggregation = d.aggregation;
            if (acc.value.kind != v.kind) continue;
            Aggregation how = aggregation_of(acc.desc);
            if (v.kind == ValueKind::Float64Histogram && (how != Aggregation::Sum || acc.value.hist.buckets != v.hist.buckets))
                how = Aggregation::None;  // only a sum of histograms with the same buckets is one
            switch (how) {
                case Aggregation::Sum:
                    if (v.kind == ValueKind::Uint64) acc.value.u64 += v.u64;
                    if (v.kind == ValueKind::Float64) acc.value.f64 += v.f64;
                    if (v.kind == ValueKind::Float64Histogram)
                        for (size_t k = 0; k < acc.value.hist.counts.size(); ++k) acc.value.hist.counts[k] += v.hist.counts[k];
                    break;
                case Aggregation::Max:
                    if (v.kind == ValueKind::Uint64) acc.value.u64 = std::max(acc.value.u64, v.u64);
                    if (v.kind == ValueKind::Float64) acc.value.f64 = std::max(acc.value.f64, v.f64);
                    break;
                case Aggregation::None:
                case Aggregation::Unknown: acc.differ |= !same(acc.value, v); break;
            }
        }
    }
    std::vector<std::pair<Description, Value>> out;
    for (auto& [name, acc] : by_name)
        if (!acc.differ) out.emplace_back(std::move(acc.desc), std::move(acc.value));
    return out;
}

}  // namespace gometrics::cli
