// Go's catalogue mapped onto ours (collectors/go_catalog.cpp): complete in
// form, and consistent with the metric table.
#include <catch2/catch.hpp>

#include <regex>
#include <set>
#include <string>

#include "catalog.h"
#include "go_catalog.h"

using namespace gometrics;
using collect::GoMapping;

namespace {

const collect::Metric* ours(std::string_view name) {
    for (const auto* m : collect::catalog())
        if (m->name == name) return m;
    return nullptr;
}

}  // namespace

TEST_CASE("Go's catalogue is sorted, unique, well-named, and every row says what it is here") {
    const std::regex go_name(R"(^/[^:]+:[^:*/]+([*/][^:*/]+)*$)");
    std::string last;
    CHECK(collect::go_catalog().size() == 98);  // Go 1.24's list plus the cheat sheet's additions
    for (const auto& g : collect::go_catalog()) {
        const std::string name(g.name);
        INFO(name);
        CHECK(std::regex_match(name, go_name));
        CHECK(name > last);
        last = name;
        if (g.mapping == GoMapping::kSame) {
            CHECK(g.note.empty());
        } else {
            CHECK(!g.note.empty());
        }
        if (g.mapping == GoMapping::kAnalogue) {
            CHECK(std::regex_match(std::string(g.note), go_name));
            CHECK(g.note != g.name);
        }
    }
}

TEST_CASE("a metric that keeps Go's name keeps Go's kind and cumulativeness") {
    for (const auto& g : collect::go_catalog()) {
        INFO(g.name);
        const collect::Metric* m = ours(g.name);
        if (!m) continue;  // planned, or not applicable
        CHECK(g.mapping == GoMapping::kSame);
        CHECK(m->kind == g.kind);
        CHECK(m->cumulative == g.cumulative);
    }
}

TEST_CASE("the memory classes of this build are the ones Go's sum rule needs") {
    std::set<std::string> leaves;
    for (const auto* m : collect::catalog()) {
        const std::string name(m->name);
        if (name.starts_with("/memory/classes/") && name != "/memory/classes/total:bytes") leaves.insert(name);
    }
    for (const char* n : {"/memory/classes/heap/objects:bytes", "/memory/classes/heap/unused:bytes",
                          "/memory/classes/heap/free:bytes", "/memory/classes/heap/released:bytes",
                          "/memory/classes/metadata/other:bytes", "/memory/classes/os-stacks:bytes",
                          "/memory/classes/other:bytes"}) {
        INFO(n);
        CHECK(leaves.count(n) == 1);
    }
    REQUIRE(ours("/memory/classes/total:bytes") != nullptr);
    REQUIRE(ours("/memory/limit:bytes") != nullptr);
}
