// The one metric table: well-formed, sorted, every entry computable.
#include <catch2/catch.hpp>

#include <cmath>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "catalog.h"

using namespace gometrics;

TEST_CASE("metric names are sorted, unique and match Go's name format") {
    const std::regex go_name(R"(^/[^:]+:[^:*/]+([*/][^:*/]+)*$)");
    std::string last;
    std::set<std::string> seen;
    REQUIRE(!collect::catalog().empty());
    for (const auto* m : collect::catalog()) {
        const std::string name(m->name);
        INFO(name);
        CHECK(std::regex_match(name, go_name));
        CHECK(name > last);
        CHECK(seen.insert(name).second);
        CHECK(!m->description.empty());
        CHECK(m->description.back() == '.');
        CHECK(m->compute != nullptr);
        last = name;
    }
}

TEST_CASE("histograms have strictly increasing edges, scalars have none") {
    for (const auto* m : collect::catalog()) {
        INFO(m->name);
        if (m->kind == layout::kKindFloat64Histogram) {
            REQUIRE(m->bounds.size() >= 2);
            for (size_t i = 1; i < m->bounds.size(); ++i) CHECK(m->bounds[i] > m->bounds[i - 1]);
            CHECK(m->cumulative);
        } else {
            CHECK(m->bounds.empty());
        }
    }
}

TEST_CASE("every metric computes a value without NaN or Inf") {
    collect::Snapshot s{1, 1, 1};
    for (const auto* m : collect::catalog()) {
        INFO(m->name);
        std::vector<uint64_t> out(m->kind == layout::kKindFloat64Histogram ? m->bounds.size() - 1 : 1, ~uint64_t{0});
        m->compute(s, out.data());
        if (m->kind == layout::kKindFloat64) {
            const double v = std::bit_cast<double>(out[0]);
            CHECK(std::isfinite(v));
            CHECK(v >= 0);
        }
    }
}

TEST_CASE("every metric says how it aggregates across processes, by the table's rule") {
    for (const auto* m : collect::catalog()) {
        INFO(m->name);
        CHECK(m->aggregation != layout::kAggUnknown);
        CHECK(m->aggregation <= layout::kAggNone);
        // Counters add up; a histogram is a count of events; only a gauge may take the largest or none.
        if (m->cumulative || m->kind == layout::kKindFloat64Histogram) CHECK(m->aggregation == layout::kAggSum);
    }
}
