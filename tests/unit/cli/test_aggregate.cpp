// Combining the metrics of several processes (cli/aggregate.h), as their
// Descriptions say, and by the fallback rule for an older agent's.
#include <catch2/catch.hpp>

#include "aggregate.h"

using namespace gometrics;
using namespace gometrics::cli;

namespace {

Description desc(std::string name, bool cumulative, Aggregation a, ValueKind kind = ValueKind::Uint64) {
    Description d;
    d.name = std::move(name);
    d.kind = kind;
    d.cumulative = cumulative;
    d.aggregation = a;
    return d;
}

Value u64(uint64_t v) { return Value{.kind = ValueKind::Uint64, .u64 = v}; }

const Value* find(const std::vector<std::pair<Description, Value>>& agg, const std::string& name) {
    for (const auto& [d, v] : agg)
        if (d.name == name) return &v;
    return nullptr;
}

}  // namespace

TEST_CASE("sum adds, max takes the largest, none keeps only a value all processes agree on") {
    Metrics a, b, c;
    for (Metrics* m : {&a, &b, &c}) {
        m->descs = {desc("/a/count:objects", true, Aggregation::Sum), desc("/b/peak:bytes", false, Aggregation::Max),
                    desc("/c/limit:bytes", false, Aggregation::None), desc("/d/setting:threads", false, Aggregation::None)};
    }
    a.values = {u64(1), u64(10), u64(1000), u64(4)};
    b.values = {u64(2), u64(30), u64(1000), u64(4)};
    c.values = {u64(4), u64(20), u64(1000), u64(8)};
    const auto agg = aggregate({&a, &b, &c});
    REQUIRE(find(agg, "/a/count:objects"));
    CHECK(find(agg, "/a/count:objects")->u64 == 7);
    CHECK(find(agg, "/b/peak:bytes")->u64 == 30);
    REQUIRE(find(agg, "/c/limit:bytes"));
    CHECK(find(agg, "/c/limit:bytes")->u64 == 1000);  // once, not three times
    CHECK(find(agg, "/d/setting:threads") == nullptr);  // they differ: no one value is the tree's
    CHECK(agg.front().second.kind == ValueKind::Uint64);
    CHECK(agg.front().first.name == "/a/count:objects");  // sorted by name
}

TEST_CASE("histograms with the same buckets add; with other buckets they are left out") {
    Metrics a, b;
    const Description h = desc("/h/dist:bytes", true, Aggregation::Sum, ValueKind::Float64Histogram);
    a.descs = b.descs = {h};
    Value va{.kind = ValueKind::Float64Histogram}, vb = va;
    va.hist = {{1, 2}, {0, 1, 2}};
    vb.hist = {{3, 4}, {0, 1, 2}};
    a.values = {va};
    b.values = {vb};
    auto agg = aggregate({&a, &b});
    REQUIRE(find(agg, "/h/dist:bytes"));
    CHECK(find(agg, "/h/dist:bytes")->hist.counts == std::vector<uint64_t>{4, 6});
    b.values[0].hist.buckets = {0, 1, 3};
    agg = aggregate({&a, &b});
    CHECK(find(agg, "/h/dist:bytes") == nullptr);
}

TEST_CASE("a Description from an older agent aggregates by the rule the table follows") {
    CHECK(aggregation_of(desc("/gc/heap/allocs:bytes", true, Aggregation::Unknown)) == Aggregation::Sum);
    CHECK(aggregation_of(desc("/gc/heap/live:bytes", false, Aggregation::Unknown)) == Aggregation::Sum);
    CHECK(aggregation_of(desc("/gc/heap/live-peak:bytes", false, Aggregation::Unknown)) == Aggregation::Max);
    CHECK(aggregation_of(desc("/memory/limit:bytes", false, Aggregation::Unknown)) == Aggregation::None);
    CHECK(aggregation_of(desc("/process/fds/limit:fds", false, Aggregation::Unknown)) == Aggregation::None);
    // What the Description says wins over the rule.
    CHECK(aggregation_of(desc("/x/limit:bytes", false, Aggregation::Sum)) == Aggregation::Sum);

    // An old process beside a new one: the new one's word is taken.
    Metrics old_agent, new_agent;
    old_agent.descs = {desc("/x/cap:bytes", false, Aggregation::Unknown)};
    new_agent.descs = {desc("/x/cap:bytes", false, Aggregation::Max)};
    old_agent.values = {u64(5)};
    new_agent.values = {u64(7)};
    const auto agg = aggregate({&old_agent, &new_agent});
    REQUIRE(find(agg, "/x/cap:bytes"));
    CHECK(find(agg, "/x/cap:bytes")->u64 == 7);
}
