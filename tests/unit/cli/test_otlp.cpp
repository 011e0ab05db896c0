// serve --otlp without the network: names, histogram buckets and the
// configuration from the OTEL_* variables.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <map>

#include "otlp.h"

using namespace gometrics;
using namespace gometrics::cli;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::function<const char*(const char*)> env(std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](const char* name) -> const char* {
        const auto it = vars.find(name);
        return it == vars.end() ? nullptr : it->second.c_str();
    };
}

}  // namespace

TEST_CASE("otlp: own names keep the Go name, units become UCUM") {
    CHECK(*otlp::own_name("/gc/heap/allocs:bytes") == std::pair<std::string, std::string>{"gometrics.gc.heap.allocs.bytes", "By"});
    CHECK(*otlp::own_name("/gc/heap/allocs:objects") ==
          std::pair<std::string, std::string>{"gometrics.gc.heap.allocs.objects", "{objects}"});
    CHECK(*otlp::own_name("/cpu/classes/user:cpu-seconds") ==
          std::pair<std::string, std::string>{"gometrics.cpu.classes.user.cpu-seconds", "s"});
    CHECK(otlp::own_name("/x/rate:bytes/second")->first == "gometrics.x.rate.bytes_per_second");
    CHECK_FALSE(otlp::own_name("no-slash:bytes"));
    CHECK_FALSE(otlp::own_name("/no/unit"));
}

TEST_CASE("otlp: Go buckets become explicit bounds holding the same values") {
    // (-Inf, 0) [0, 8) [8, +Inf): three buckets, two bounds just below 0 and 8.
    Float64Histogram open{.counts = {1, 2, 3}, .buckets = {-kInf, 0, 8, kInf}};
    auto b = otlp::explicit_buckets(open);
    REQUIRE(b.bounds.size() == 2);
    CHECK(b.bounds[0] == std::nextafter(0.0, -kInf));
    CHECK(b.bounds[1] == std::nextafter(8.0, -kInf));
    CHECK(b.counts == std::vector<uint64_t>{1, 2, 3});

    // [0, 8) [8, 16): empty buckets below 0 and from 16 on.
    Float64Histogram closed{.counts = {4, 5}, .buckets = {0, 8, 16}};
    b = otlp::explicit_buckets(closed);
    CHECK(b.bounds == std::vector<double>{std::nextafter(0.0, -kInf), std::nextafter(8.0, -kInf),
                                          std::nextafter(16.0, -kInf)});
    CHECK(b.counts == std::vector<uint64_t>{0, 4, 5, 0});

    Float64Histogram bad{.counts = {1}, .buckets = {0}};
    CHECK(otlp::explicit_buckets(bad).counts.empty());
}

TEST_CASE("otlp: endpoint, headers, timeout and interval follow the OTLP exporter variables") {
    auto c = otlp::configure(std::nullopt, std::nullopt, env({}));
    REQUIRE(c);
    CHECK(c->url == "http://localhost:4318/v1/metrics");
    CHECK(c->interval == std::chrono::seconds(60));
    CHECK(c->timeout == std::chrono::seconds(10));

    c = otlp::configure(std::nullopt, std::nullopt, env({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://col:4318/"}}));
    CHECK(c->url == "http://col:4318/v1/metrics");
    c = otlp::configure(std::nullopt, std::nullopt,
                        env({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://col:4318"},
                             {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://other:9/m"}}));
    CHECK(c->url == "http://other:9/m");  // the signal's own endpoint is used as is
    c = otlp::configure(std::string("http://col:4318"), 5, env({{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://x/y"}}));
    CHECK(c->url == "http://col:4318/v1/metrics");  // --otlp wins; no path: /v1/metrics
    CHECK(c->interval == std::chrono::seconds(5));
    c = otlp::configure(std::string("http://col:4318/custom"), std::nullopt, env({}));
    CHECK(c->url == "http://col:4318/custom");

    c = otlp::configure(std::nullopt, std::nullopt,
                        env({{"OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b , x=1"},
                             {"OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x=2"},
                             {"OTEL_EXPORTER_OTLP_TIMEOUT", "2500"},
                             {"OTEL_METRIC_EXPORT_INTERVAL", "15000"},
                             {"OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"}}));
    REQUIRE(c);
    CHECK(c->gzip);
    CHECK(c->headers == std::vector<std::pair<std::string, std::string>>{{"api-key", "a b"}, {"x", "2"}});
    CHECK(c->timeout == std::chrono::milliseconds(2500));
    CHECK(c->interval == std::chrono::seconds(15));

    CHECK_FALSE(otlp::configure(std::string("https://col:4318"), std::nullopt, env({})));
    CHECK_FALSE(otlp::configure(std::string("col:4318"), std::nullopt, env({})));
    CHECK_FALSE(otlp::configure(std::nullopt, std::nullopt, env({{"OTEL_EXPORTER_OTLP_HEADERS", "novalue"}})));
    CHECK_FALSE(otlp::configure(std::nullopt, std::nullopt, env({{"OTEL_EXPORTER_OTLP_TIMEOUT", "-1"}})));
    CHECK_FALSE(otlp::configure(std::nullopt, std::nullopt, env({{"OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"}})));
    CHECK_FALSE(otlp::configure(std::nullopt, std::nullopt, env({{"OTEL_RESOURCE_ATTRIBUTES", "team"}})));
    const auto bad = otlp::configure(std::nullopt, std::nullopt, env({{"OTEL_METRIC_EXPORT_INTERVAL", "1m"}}));
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message.find("OTEL_METRIC_EXPORT_INTERVAL") != std::string::npos);
}
