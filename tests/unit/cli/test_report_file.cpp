// Saved reports as check and diff load them: shapes, peaks, errors.
#include <catch2/catch.hpp>

#include "common.h"
#include "report_file.h"

using namespace gometrics;
using namespace gometrics::cli;
using json = nlohmann::ordered_json;

namespace {

json sample_doc() {
    return json::parse(R"({
      "pid": 42,
      "metrics": [
        {"name": "/gc/heap/objects:objects", "kind": "uint64", "cumulative": false, "value": 7},
        {"name": "/a/hist:seconds", "kind": "float64-histogram", "cumulative": true,
         "value": {"buckets": ["-Inf", 0.001, 0.002, "+Inf"], "counts": [0, 3, 1]}},
        {"name": "/future/kind:things", "kind": "complex128", "cumulative": false, "value": [1, 2]},
        {"name": "/sync/mutex/wait/total:seconds", "kind": "float64", "cumulative": true, "value": 0.25}
      ],
      "peak": {"/process/memory/rss-peak:bytes": 1048576, "/gc/heap/live-peak:bytes": null}
    })");
}

int failure_status(const json& doc) {
    try {
        (void)report_from_json(doc, "test");
    } catch (const Failure& f) {
        return f.status;
    }
    return 0;
}

}  // namespace

TEST_CASE("a report's metrics and peaks are found by name, unknown kinds skipped") {
    const Report r = report_from_json(sample_doc(), "test");
    REQUIRE(r.metrics.size() == 3);
    CHECK(r.metrics.front().desc.name == "/a/hist:seconds");  // sorted
    REQUIRE(r.find("/gc/heap/objects:objects"));
    CHECK(r.find("/gc/heap/objects:objects")->u64 == 7);
    CHECK(r.find("/sync/mutex/wait/total:seconds")->f64 == 0.25);
    CHECK(r.find("/a/hist:seconds")->hist.counts == std::vector<uint64_t>{0, 3, 1});
    CHECK(r.find("/future/kind:things") == nullptr);
    REQUIRE(r.find("/process/memory/rss-peak:bytes"));
    CHECK(r.find("/process/memory/rss-peak:bytes")->u64 == 1048576);
    CHECK(r.find("/gc/heap/live-peak:bytes") == nullptr);  // null: not known
    CHECK(r.all().size() == 4);
}

TEST_CASE("checks run on a loaded report") {
    const Report r = report_from_json(sample_doc(), "test");
    const auto checks = parse_checks({"/gc/heap/objects:objects <= 7", "/a/hist:seconds:p99 < 1ms",
                                      "/process/memory/rss-peak:bytes >= 1MiB", "/no/such:bytes < 1"});
    const auto results = run_checks(r, checks);
    REQUIRE(results.size() == 4);
    CHECK(results[0].passed);
    CHECK_FALSE(results[1].passed);  // three samples in [1ms, 2ms)
    CHECK(results[2].passed);
    CHECK_FALSE(results[3].passed);
    CHECK(results[3].message.find("not present") != std::string::npos);
}

TEST_CASE("a bad check is a usage error, a bad report an error") {
    try {
        (void)parse_checks({"/gc/heap/objects:objects <= 7", "/gc/heap/live:bytes < 3 furlongs"});
        FAIL("no exception");
    } catch (const Failure& f) {
        CHECK(f.status == kExitUsage);
        CHECK(std::string(f.what()).find("furlongs") != std::string::npos);
    }
    CHECK(failure_status(json::parse(R"({"pid": 1})")) == kExitError);
    CHECK(failure_status(json::parse(R"([1, 2])")) == kExitError);
    CHECK(failure_status(json::parse(R"({"metrics": [{"name": "/x:bytes"}]})")) == kExitError);
    CHECK(failure_status(json::parse(
              R"({"metrics": [{"name": "/x:bytes", "kind": "uint64", "value": "seven"}]})")) == kExitError);
    CHECK(failure_status(json::parse(R"({"metrics": [{"name": "/h:bytes", "kind": "float64-histogram",
              "value": {"buckets": [0, 1], "counts": [1, 2]}}]})")) == kExitError);
    CHECK(failure_status(sample_doc()) == 0);
}

TEST_CASE("cli: names another process chose are printed without what drives a terminal") {
    using gometrics::cli::printable;
    CHECK(printable("demo") == "demo");
    CHECK(printable("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d") == "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d");  // é € 🐍
    CHECK(printable("a\x1b[2Jb") == "a?[2Jb");                          // ESC
    CHECK(printable("x\xc2\x9b" "31m") == "x?31m");                     // C1's CSI
    CHECK(printable("red\xe2\x80\xae" "evil") == "red?evil");            // right-to-left override
    CHECK(printable("\xe2\x81\xa6x") == "?x");                          // an isolate
    CHECK(printable("\xff\xfe" "demo") == "??demo");                    // not UTF-8
    CHECK(printable("\xe0\x80\xaf") == "???");                          // overlong '/'
    CHECK(printable("\xed\xa0\x80") == "???");                          // a surrogate
    CHECK(printable("\xf4\x90\x80\x80") == "????");                     // past U+10FFFF
    CHECK(printable("cut\xe2\x82") == "cut??");                         // a sequence cut short
}
