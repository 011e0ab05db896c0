// Go's consistency checks (runtime/metrics_test.go's TestReadMetricsConsistency),
// on every metric a process publishes, in every snapshot read in a tight
// loop for argv[2] seconds while the process runs:
//   - names sorted, unique, matching Go's regexp; every value of its declared kind;
//   - /memory/classes/total is exactly the sum of the other /memory/classes leaves;
//   - no class negative or wrapped (each below 2^56 bytes);
//   - allocs - frees == live objects and bytes;
//   - size histograms: one more boundary than counts, alloc and free share
//     boundaries, alloc >= free in every bucket, counts sum to the totals;
//   - cumulative values never decrease (histograms: each bucket);
//   - no NaN or Inf (histogram boundaries may be -Inf/+Inf at the ends only).
// Exit 1 on the first violation, printing it; prints the number of snapshots.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <regex>
#include <string>

#include "reader.h"

using namespace gometrics;

namespace {

[[noreturn]] void fail(const std::string& what, uint64_t seq) {
    std::fprintf(stderr, "snapshot %lu: %s\n", static_cast<unsigned long>(seq), what.c_str());
    std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) return 2;
    const int pid = std::atoi(argv[1]);
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(std::atof(argv[2]));
    auto r = Reader::open(pid);
    if (!r) {
        std::fprintf(stderr, "%s\n", r.error().message.c_str());
        return 1;
    }
    const auto& all = r->All();
    const std::regex go_name(R"(^/[^:]+:[^:*/]+([*/][^:*/]+)*$)");
    std::map<std::string, size_t> at;
    for (size_t i = 0; i < all.size(); ++i) {
        if (!std::regex_match(all[i].name, go_name)) fail("bad name " + all[i].name, 0);
        if (i && !(all[i - 1].name < all[i].name)) fail("not sorted at " + all[i].name, 0);
        at[all[i].name] = i;
    }
    for (const char* required : {"/memory/classes/total:bytes", "/memory/classes/heap/objects:bytes",
                                 "/gc/heap/allocs:objects", "/gc/heap/allocs-by-size:bytes"})
        if (!at.count(required)) fail(std::string("missing ") + required, 0);

    std::vector<std::vector<double>> last(all.size());
    long snapshots = 0;
    ReadOptions fresh;
    fresh.fresh_timeout_ms = 20;
    while (std::chrono::steady_clock::now() < until) {
        auto s = r->ReadAll(snapshots % 2 ? fresh : ReadOptions{0, 10000});
        if (!s) {
            std::fprintf(stderr, "read: %s\n", s.error().message.c_str());
            return 1;
        }
        const uint64_t seq = s->seq;
        auto v = [&](const char* n) -> const Value& { return s->values[at.at(n)]; };
        uint64_t leaves = 0;
        for (size_t i = 0; i < all.size(); ++i) {
            const Description& d = all[i];
            const Value& val = s->values[i];
            if (val.kind != d.kind) fail(d.name + " has the wrong kind", seq);
            if (val.kind == ValueKind::Float64 && !std::isfinite(val.f64)) fail(d.name + " is not finite", seq);
            if (val.kind == ValueKind::Float64Histogram) {
                const auto& h = val.hist;
                if (h.buckets.size() != h.counts.size() + 1) fail(d.name + ": buckets != counts + 1", seq);
                for (size_t b = 0; b < h.buckets.size(); ++b) {
                    if (std::isnan(h.buckets[b])) fail(d.name + ": NaN boundary", seq);
                    if (std::isinf(h.buckets[b]) && b != 0 && b + 1 != h.buckets.size())
                        fail(d.name + ": infinite inner boundary", seq);
                    if (b && !(h.buckets[b] > h.buckets[b - 1])) fail(d.name + ": boundaries not increasing", seq);
                }
            }
            if (d.name.starts_with("/memory/classes/") && d.name != "/memory/classes/total:bytes") {
                if (val.u64 >= (uint64_t{1} << 56)) fail(d.name + " wrapped: " + std::to_string(val.u64), seq);
                leaves += val.u64;
            }
            if (d.cumulative) {
                std::vector<double> now;
                if (val.kind == ValueKind::Float64Histogram)
                    now.assign(val.hist.counts.begin(), val.hist.counts.end());
                else
                    now.push_back(val.kind == ValueKind::Uint64 ? double(val.u64) : val.f64);
                if (!last[i].empty())
                    for (size_t k = 0; k < now.size(); ++k)
                        if (now[k] < last[i][k])
                            fail(d.name + " went down: [" + std::to_string(k) + "] " + std::to_string(last[i][k]) +
                                     " to " + std::to_string(now[k]),
                                 seq);
                last[i] = std::move(now);
            }
        }
        if (leaves != v("/memory/classes/total:bytes").u64)
            fail("total " + std::to_string(v("/memory/classes/total:bytes").u64) + " != sum of classes " +
                     std::to_string(leaves), seq);
        if (v("/gc/heap/objects:objects").u64 != v("/gc/heap/allocs:objects").u64 - v("/gc/heap/frees:objects").u64)
            fail("objects " + std::to_string(v("/gc/heap/objects:objects").u64) + " != allocs " +
                     std::to_string(v("/gc/heap/allocs:objects").u64) + " - frees " +
                     std::to_string(v("/gc/heap/frees:objects").u64),
                 seq);
        if (v("/gc/heap/live:bytes").u64 != v("/gc/heap/allocs:bytes").u64 - v("/gc/heap/frees:bytes").u64)
            fail("live bytes != alloc bytes - free bytes", seq);
        if (v("/memory/classes/heap/objects:bytes").u64 != v("/gc/heap/live:bytes").u64)
            fail("heap/objects != live bytes", seq);
        const auto& ah = v("/gc/heap/allocs-by-size:bytes").hist;
        const auto& fh = v("/gc/heap/frees-by-size:bytes").hist;
        if (ah.buckets != fh.buckets) fail("alloc and free histograms differ in boundaries", seq);
        uint64_t asum = 0, fsum = 0;
        for (size_t k = 0; k < ah.counts.size(); ++k) {
            if (ah.counts[k] < fh.counts[k]) fail("bucket " + std::to_string(k) + " has more frees than allocs", seq);
            asum += ah.counts[k];
            fsum += fh.counts[k];
        }
        if (asum != v("/gc/heap/allocs:objects").u64 || fsum != v("/gc/heap/frees:objects").u64)
            fail("histogram counts do not sum to the object totals", seq);
        ++snapshots;
    }
    std::printf("%ld snapshots consistent\n", snapshots);
    return snapshots > 0 ? 0 : 1;
}
