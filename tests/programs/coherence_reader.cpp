// Reads a process's metrics in a tight loop with the reader library for
// argv[2] seconds and checks, in every snapshot, what must always hold:
// objects == allocs - frees, live bytes == alloc bytes - free bytes, and no
// cumulative value (histograms by count) ever goes down. Exit 1 on the first
// violation, printing it; prints the number of snapshots checked.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "reader.h"

using namespace gometrics;

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
    std::map<std::string, size_t> at;
    for (size_t i = 0; i < all.size(); ++i) at[all[i].name] = i;
    std::vector<double> last(all.size(), 0);
    long snapshots = 0;
    ReadOptions fresh;
    fresh.fresh_timeout_ms = 20;
    while (std::chrono::steady_clock::now() < until) {
        auto s = r->ReadAll(snapshots % 2 ? fresh : ReadOptions{0, 10000});
        if (!s) {
            std::fprintf(stderr, "read: %s\n", s.error().message.c_str());
            return 1;
        }
        auto u = [&](const char* n) { return s->values[at.at(n)].u64; };
        if (u("/gc/heap/objects:objects") != u("/gc/heap/allocs:objects") - u("/gc/heap/frees:objects") ||
            u("/gc/heap/live:bytes") != u("/gc/heap/allocs:bytes") - u("/gc/heap/frees:bytes")) {
            std::fprintf(stderr, "incoherent snapshot %lu: objects %lu allocs %lu frees %lu\n", s->seq,
                         u("/gc/heap/objects:objects"), u("/gc/heap/allocs:objects"), u("/gc/heap/frees:objects"));
            return 1;
        }
        for (size_t i = 0; i < all.size(); ++i) {
            if (!all[i].cumulative) continue;
            const Value& v = s->values[i];
            double now = v.kind == ValueKind::Uint64 ? double(v.u64) : v.f64;
            if (v.kind == ValueKind::Float64Histogram) {
                now = 0;
                for (auto c : v.hist.counts) now += double(c);
            }
            if (now < last[i]) {
                std::fprintf(stderr, "%s went down: %f -> %f\n", all[i].name.c_str(), last[i], now);
                return 1;
            }
            last[i] = now;
        }
        ++snapshots;
    }
    std::printf("%ld snapshots coherent\n", snapshots);
    return snapshots > 0 ? 0 : 1;
}
