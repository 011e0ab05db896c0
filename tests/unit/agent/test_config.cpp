// The GOMETRICS_* table (agent/config.h): defaults come from the documented
// default text, bad values fall back to it, good ones are taken.
#include <catch2/catch.hpp>

#include <cstring>
#include <map>
#include <string>

#include "config.h"

using namespace gometrics;

namespace {

std::map<std::string, std::string> g_env;

const char* lookup(const char* name) {
    const auto it = g_env.find(name);
    return it == g_env.end() ? nullptr : it->second.c_str();
}

agent::Config parse(std::map<std::string, std::string> env) {
    g_env = std::move(env);
    agent::Config c{};
    agent::parse_config(c, lookup);
    return c;
}

}  // namespace

TEST_CASE("with no variable set, every setting is its documented default") {
    const agent::Config c = parse({});
    CHECK(c.interval_ms == 1000);
    CHECK(!c.eager_publisher);
    CHECK(c.report_path == nullptr);
    CHECK(c.profile_report_path == nullptr);
    CHECK(c.trace == nullptr);
    CHECK(c.profile_rate == 524288);
    CHECK(c.mutex_fraction == 8);
    CHECK(c.profile_max_stacks == 1024);
    CHECK(!c.jemalloc);
}

TEST_CASE("every variable is named GOMETRICS_*, documented, and its default parses") {
    for (const auto& v : agent::environment_table()) {
        INFO(v.name);
        CHECK(v.name.starts_with("GOMETRICS_"));
        CHECK(!v.allowed.empty());
        CHECK(v.meaning.back() == '.');
        agent::Config c{};
        CHECK(v.parse(std::string(v.default_text).c_str(), c));
    }
}

TEST_CASE("values in range are taken; others fall back to the default") {
    agent::Config c = parse({{"GOMETRICS_INTERVAL_MS", "250"}, {"GOMETRICS_PUBLISHER", "thread"},
                             {"GOMETRICS_REPORT", "/tmp/r.%p.json"}, {"GOMETRICS_TRACE", "1"},
                             {"GOMETRICS_PROFILE_RATE", "0"}, {"GOMETRICS_MUTEX_PROFILE_FRACTION", "1"},
                             {"GOMETRICS_PROFILE_MAX_STACKS", "4096"}, {"GOMETRICS_ALLOCATOR", "jemalloc"}});
    CHECK(c.interval_ms == 250);
    CHECK(c.eager_publisher);
    REQUIRE(c.report_path);
    CHECK(std::strcmp(c.report_path, "/tmp/r.%p.json") == 0);
    REQUIRE(c.trace);
    CHECK(std::strcmp(c.trace, "1") == 0);
    CHECK(c.profile_rate == 0);
    CHECK(c.mutex_fraction == 1);
    CHECK(c.profile_max_stacks == 4096);
    CHECK(c.jemalloc);

    c = parse({{"GOMETRICS_INTERVAL_MS", "5"}, {"GOMETRICS_PUBLISHER", "eager"}, {"GOMETRICS_TRACE", "0"},
               {"GOMETRICS_PROFILE_RATE", "-1"}, {"GOMETRICS_MUTEX_PROFILE_FRACTION", "8x"},
               {"GOMETRICS_PROFILE_MAX_STACKS", "99999999"}, {"GOMETRICS_ALLOCATOR", "tcmalloc"},
               {"GOMETRICS_REPORT", ""}});
    CHECK(c.interval_ms == 1000);
    CHECK(!c.eager_publisher);
    CHECK(c.trace == nullptr);
    CHECK(c.profile_rate == 524288);
    CHECK(c.mutex_fraction == 8);
    CHECK(c.profile_max_stacks == 1024);
    CHECK(!c.jemalloc);
    CHECK(c.report_path == nullptr);
    CHECK(parse({{"GOMETRICS_PUBLISHER", "lazy"}}).eager_publisher == false);  // the old name of auto
}
