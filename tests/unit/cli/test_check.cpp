// Unit tests for cli/check (parse_check, evaluate) and the cli/units
// rendering its messages rely on.
#include <cmath>
#include <limits>
#include <string>

#include <catch2/catch.hpp>

#include "check.h"
#include "units.h"

using gometrics::Float64Histogram;
using gometrics::Value;
using gometrics::ValueKind;
using namespace gometrics::cli;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

Check parsed(std::string_view expr) {
    auto result = parse_check(expr);
    if (const auto* error = std::get_if<std::string>(&result)) FAIL("unexpected parse error: " << *error);
    return std::get<Check>(result);
}

// The parse error for expr; fails the test if expr parses.
std::string error_of(std::string_view expr) {
    auto result = parse_check(expr);
    if (std::holds_alternative<Check>(result)) FAIL("expected a parse error for: " << expr);
    return std::get<std::string>(result);
}

double value_of(std::string_view expr) { return parsed(expr).value; }

Value uint64_value(uint64_t v) { return {.kind = ValueKind::Uint64, .u64 = v, .f64 = 0, .hist = {}}; }
Value float64_value(double v) { return {.kind = ValueKind::Float64, .u64 = 0, .f64 = v, .hist = {}}; }
Value histogram_value(Float64Histogram h) {
    return {.kind = ValueKind::Float64Histogram, .u64 = 0, .f64 = 0, .hist = std::move(h)};
}

// Pause times: 10 samples in [0,1ms), 80 in [1ms,2ms), 10 in [2ms,+Inf).
Value pauses() {
    return histogram_value({.counts = {10, 80, 10}, .buckets = {0, 1e-3, 2e-3, kInf}});
}

CheckResult run(std::string_view expr, const Value& v) { return evaluate(parsed(expr), &v); }

}  // namespace

TEST_CASE("parse_check reads name, operator and value", "[check]") {
    const Check c = parsed("/gc/heap/objects:objects <= 0");
    CHECK(c.name == "/gc/heap/objects:objects");
    CHECK(c.selector.empty());
    CHECK(c.op == Op::LessEqual);
    CHECK(c.value == 0);
    CHECK(c.text == "/gc/heap/objects:objects <= 0");
}

TEST_CASE("parse_check knows every operator", "[check]") {
    CHECK(parsed("/a:b < 1").op == Op::Less);
    CHECK(parsed("/a:b <= 1").op == Op::LessEqual);
    CHECK(parsed("/a:b == 1").op == Op::Equal);
    CHECK(parsed("/a:b != 1").op == Op::NotEqual);
    CHECK(parsed("/a:b >= 1").op == Op::GreaterEqual);
    CHECK(parsed("/a:b > 1").op == Op::Greater);
}

TEST_CASE("parse_check takes spaces around the operator or none", "[check]") {
    for (const char* expr : {"/gc/heap/objects:objects<=0", "/gc/heap/objects:objects <= 0",
                             "/gc/heap/objects:objects<= 0", "/gc/heap/objects:objects\t<=\t0",
                             "  /gc/heap/objects:objects <=0  "}) {
        INFO(expr);
        const Check c = parsed(expr);
        CHECK(c.name == "/gc/heap/objects:objects");
        CHECK(c.op == Op::LessEqual);
        CHECK(c.value == 0);
    }
    CHECK(parsed("  /a:b>1 ").text == "/a:b>1");
}

TEST_CASE("parse_check reads numbers", "[check]") {
    CHECK(value_of("/a:b < 42") == 42);
    CHECK(value_of("/a:b < 1.5") == 1.5);
    CHECK(value_of("/a:b < .5") == 0.5);
    CHECK(value_of("/a:b < -3") == -3);
    CHECK(value_of("/a:b < +3") == 3);
    CHECK(value_of("/a:b < 1e3") == 1000);
    CHECK(value_of("/a:b < 2.5E-2") == Approx(0.025));
    CHECK(value_of("/a:b < 1e+2") == 100);
}

TEST_CASE("parse_check applies SI and binary multipliers to any unit", "[check]") {
    CHECK(value_of("/a:objects < 2k") == 2e3);
    CHECK(value_of("/a:objects < 2M") == 2e6);
    CHECK(value_of("/a:objects < 2G") == 2e9);
    CHECK(value_of("/a:objects < 2T") == 2e12);
    CHECK(value_of("/a:objects < 1Ki") == 1024);
    CHECK(value_of("/a:objects < 1Mi") == 1048576);
    CHECK(value_of("/a:bytes < 1Gi") == 1073741824.0);
    CHECK(value_of("/a:bytes < 1Ti") == 1099511627776.0);
    CHECK(value_of("/a:seconds < 1k") == 1000);
    CHECK(value_of("/a:objects < -1.5k") == -1500);
    CHECK(value_of("/a:objects < 1e3k") == 1e6);
}

TEST_CASE("parse_check applies byte suffixes to bytes metrics", "[check]") {
    CHECK(value_of("/gc/heap/allocs:bytes < 100B") == 100);
    CHECK(value_of("/gc/heap/allocs:bytes < 2KiB") == 2048);
    CHECK(value_of("/gc/heap/allocs:bytes < 1.5MiB") == 1.5 * 1048576);
    CHECK(value_of("/gc/heap/allocs:bytes < 1GiB") == 1073741824.0);
    CHECK(value_of("/gc/heap/allocs:bytes < 1TiB") == 1099511627776.0);
    CHECK(value_of("/gc/heap/allocs:bytes < 64 MiB") == 64 * 1048576.0);
}

TEST_CASE("parse_check converts time suffixes to seconds", "[check]") {
    CHECK(value_of("/gc/pauses:seconds:p99 < 5ns") == Approx(5e-9));
    CHECK(value_of("/gc/pauses:seconds:p99 < 5us") == Approx(5e-6));
    CHECK(value_of("/gc/pauses:seconds:p99 < 5µs") == Approx(5e-6));       // micro sign
    CHECK(value_of("/gc/pauses:seconds:p99 < 5\u03bcs") == Approx(5e-6));  // Greek mu
    CHECK(value_of("/gc/pauses:seconds:p99 < 5ms") == Approx(5e-3));
    CHECK(value_of("/gc/pauses:seconds:p99 < 5s") == 5);
    CHECK(value_of("/gc/pauses:seconds:p99 < 5m") == 300);
    CHECK(value_of("/gc/pauses:seconds:p99 < 2h") == 7200);
    CHECK(value_of("/cpu/classes/user:cpu-seconds > 1.5 s") == 1.5);
}

TEST_CASE("parse_check reads histogram selectors", "[check]") {
    for (const char* selector : {"p50", "p90", "p99", "p99.9", "p99.99", "p0", "p100", "p5", "count", "max"}) {
        INFO(selector);
        const Check c = parsed(std::string("/gc/pauses:seconds:") + selector + " < 1");
        CHECK(c.name == "/gc/pauses:seconds");
        CHECK(c.selector == selector);
    }
}

TEST_CASE("parse_check rejects bad expressions", "[check]") {
    CHECK_THAT(error_of(""), Catch::Contains("empty expression"));
    CHECK_THAT(error_of("   "), Catch::Contains("empty expression"));
    CHECK_THAT(error_of("/gc/heap/objects:objects 5"), Catch::Contains("no comparison operator"));
    CHECK_THAT(error_of("< 5"), Catch::Contains("missing metric name"));
    CHECK_THAT(error_of("/gc/heap/objects < 5"), Catch::Contains("has no ':unit'"));
    CHECK_THAT(error_of("gc/heap/objects:objects < 5"), Catch::Contains("does not start with '/'"));
    CHECK_THAT(error_of("/:objects < 5"), Catch::Contains("empty path"));
    CHECK_THAT(error_of("/gc/heap/objects: < 5"), Catch::Contains("empty unit"));
    CHECK_THAT(error_of("/gc/heap objects:objects < 5"), Catch::Contains("space"));
    CHECK_THAT(error_of("/a:b = 5"), Catch::Contains("'=' is not an operator"));
    CHECK_THAT(error_of("/a:b ! 5"), Catch::Contains("'!' is not an operator"));
    CHECK_THAT(error_of("/a:b <"), Catch::Contains("missing value after '<'"));
    CHECK_THAT(error_of("/a:b >=   "), Catch::Contains("missing value after '>='"));
}

TEST_CASE("parse_check rejects bad numbers and suffixes", "[check]") {
    CHECK_THAT(error_of("/a:b < abc"), Catch::Contains("'abc' is not a number"));
    CHECK_THAT(error_of("/a:b < -"), Catch::Contains("is not a number"));
    CHECK_THAT(error_of("/a:b < inf"), Catch::Contains("is not a number"));
    CHECK_THAT(error_of("/a:b < nan"), Catch::Contains("is not a number"));
    CHECK_THAT(error_of("/a:b < +-5"), Catch::Contains("is not a number"));
    CHECK_THAT(error_of("/a:b < 1.2.3"), Catch::Contains("is not a number"));
    CHECK_THAT(error_of("/a:b < 5 6"), Catch::Contains("is not a number"));
    CHECK_THAT(error_of("/a:b < 1e999"), Catch::Contains("out of range"));
    CHECK_THAT(error_of("/a:b < 1e308T"), Catch::Contains("out of range"));
    CHECK_THAT(error_of("/a:b < 5x"), Catch::Contains("unknown suffix 'x'"));
    CHECK_THAT(error_of("/a:b < 5kb"), Catch::Contains("unknown suffix 'kb'"));
    CHECK_THAT(error_of("/a:bytes < 5e"), Catch::Contains("unknown suffix 'e'"));
}

TEST_CASE("parse_check rejects suffixes of the wrong dimension", "[check]") {
    CHECK_THAT(error_of("/gc/pauses:seconds:p99 < 5MiB"),
               Catch::Contains("suffix 'MiB' only applies to bytes metrics"));
    CHECK_THAT(error_of("/gc/heap/objects:objects < 5B"), Catch::Contains("only applies to bytes"));
    CHECK_THAT(error_of("/gc/heap/allocs:bytes < 5ms"),
               Catch::Contains("suffix 'ms' only applies to seconds metrics"));
    CHECK_THAT(error_of("/sched/goroutines:goroutines < 5s"), Catch::Contains("only applies to seconds"));
    // A sample count is a plain number whatever the histogram measures.
    CHECK_THAT(error_of("/gc/pauses:seconds:count > 5ms"), Catch::Contains("only applies to seconds"));
    CHECK_THAT(error_of("/gc/heap/allocs-by-size:bytes:count > 5KiB"), Catch::Contains("only applies to bytes"));
    CHECK(value_of("/gc/pauses:seconds:count > 5k") == 5000);
}

TEST_CASE("parse_check rejects bad selectors", "[check]") {
    for (const char* selector : {"p", "p101", "p-1", "p+5", "p1e1", "p.5", "p50.", "p9.9.9", "p9x", "P50", "avg", "min",
                                 "count:x"}) {
        INFO(selector);
        CHECK_THAT(error_of(std::string("/gc/pauses:seconds:") + selector + " < 1"),
                   Catch::Contains("unknown selector"));
    }
    CHECK_THAT(error_of("/gc/pauses:seconds: < 1"), Catch::Contains("no selector"));
}

TEST_CASE("parse errors quote the expression", "[check]") {
    CHECK(error_of("  /a:b < 5x ") ==
          "invalid check \"/a:b < 5x\": unknown suffix 'x' (expected k M G T, Ki Mi Gi Ti, "
          "B KiB MiB GiB TiB, ns us µs ms s m h)");
    CHECK(error_of("/a:b 5") ==
          "invalid check \"/a:b 5\": no comparison operator (expected one of < <= == != >= >)");
}

TEST_CASE("evaluate compares uint64 values with every operator", "[check]") {
    const Value three = uint64_value(3);
    CHECK(run("/a:objects < 4", three).passed);
    CHECK_FALSE(run("/a:objects < 3", three).passed);
    CHECK(run("/a:objects <= 3", three).passed);
    CHECK_FALSE(run("/a:objects <= 2", three).passed);
    CHECK(run("/a:objects == 3", three).passed);
    CHECK_FALSE(run("/a:objects == 4", three).passed);
    CHECK(run("/a:objects != 4", three).passed);
    CHECK_FALSE(run("/a:objects != 3", three).passed);
    CHECK(run("/a:objects >= 3", three).passed);
    CHECK_FALSE(run("/a:objects >= 4", three).passed);
    CHECK(run("/a:objects > 2", three).passed);
    CHECK_FALSE(run("/a:objects > 3", three).passed);
    CHECK(run("/a:objects > 2", three).found == 3);
}

TEST_CASE("evaluate reports what it found", "[check]") {
    const CheckResult failed = run("/gc/heap/objects:objects <= 0", uint64_value(3));
    CHECK_FALSE(failed.passed);
    CHECK(failed.message == "check failed: /gc/heap/objects:objects <= 0 (found 3)");

    const CheckResult passed = run("/gc/heap/objects:objects<=5", uint64_value(3));
    CHECK(passed.passed);
    CHECK(passed.message == "check passed: /gc/heap/objects:objects<=5 (found 3)");

    CHECK(run("/gc/heap/allocs:bytes < 1MiB", uint64_value(3 << 20)).message ==
          "check failed: /gc/heap/allocs:bytes < 1MiB (found 3 MiB)");
    CHECK(run("/gc/heap/objects:objects < 1k", uint64_value(123456)).message ==
          "check failed: /gc/heap/objects:objects < 1k (found 123k)");
}

TEST_CASE("evaluate compares float64 values exactly", "[check]") {
    CHECK(run("/cpu/classes/user:cpu-seconds > 1s", float64_value(1.5)).passed);
    CHECK(run("/gc/gogc:percent == 100", float64_value(100)).passed);
    CHECK_FALSE(run("/a:ratio == 0.3", float64_value(0.1 + 0.2)).passed);  // no tolerance
    CHECK(run("/a:ratio != 0.3", float64_value(0.1 + 0.2)).passed);
    CHECK_FALSE(run("/a:ratio < 1", float64_value(std::nan(""))).passed);
    CHECK(run("/a:ratio != 1", float64_value(std::nan(""))).passed);
    const CheckResult r = run("/cpu/classes/user:cpu-seconds < 100ms", float64_value(0.25));
    CHECK_FALSE(r.passed);
    CHECK(r.found == 0.25);
    CHECK(r.message == "check failed: /cpu/classes/user:cpu-seconds < 100ms (found 250ms)");
}

TEST_CASE("evaluate reads histogram selectors", "[check]") {
    const Value h = pauses();
    CHECK(run("/gc/pauses:seconds:p50 < 1.5ms", h).found == Approx(1.5e-3));
    CHECK(run("/gc/pauses:seconds:p90 < 1.5ms", h).found == Approx(2e-3));
    CHECK(run("/gc/pauses:seconds:p99 < 1.5ms", h).found == Approx(2e-3));  // finite edge of [2ms, +Inf)
    CHECK(run("/gc/pauses:seconds:p5 < 1.5ms", h).found == Approx(0.5e-3));
    CHECK(run("/gc/pauses:seconds:count == 100", h).passed);
    CHECK(run("/gc/pauses:seconds:max == 1", h).found == kInf);
    CHECK(run("/gc/pauses:seconds:max < 3ms", histogram_value({.counts = {1, 0}, .buckets = {0, 1e-3, 2e-3}}))
              .passed);

    const CheckResult r = run("/gc/pauses:seconds:p50 < 1ms", h);
    CHECK_FALSE(r.passed);
    CHECK(r.message == "check failed: /gc/pauses:seconds:p50 < 1ms (found 1.5ms)");
    CHECK(run("/gc/pauses:seconds:count < 10", h).message ==
          "check failed: /gc/pauses:seconds:count < 10 (found 100)");
}

TEST_CASE("evaluate fails when there is nothing to compare", "[check]") {
    const Check c = parsed("/gc/heap/objects:objects <= 0");
    const CheckResult absent = evaluate(c, nullptr);
    CHECK_FALSE(absent.passed);
    CHECK(std::isnan(absent.found));
    CHECK(absent.message == "check failed: /gc/heap/objects:objects <= 0 (/gc/heap/objects:objects is not present)");

    const Value bad{};
    const CheckResult unsupported = evaluate(c, &bad);
    CHECK_FALSE(unsupported.passed);
    CHECK_THAT(unsupported.message, Catch::Contains("unsupported"));

    const Value unknown_kind{.kind = static_cast<ValueKind>(9), .u64 = 0, .f64 = 0, .hist = {}};
    CHECK_THAT(evaluate(c, &unknown_kind).message, Catch::Contains("unsupported"));
}

TEST_CASE("evaluate fails on a selector that does not fit the kind", "[check]") {
    const CheckResult needs_selector = run("/gc/pauses:seconds < 1ms", pauses());
    CHECK_FALSE(needs_selector.passed);
    CHECK_THAT(needs_selector.message, Catch::Contains("is a histogram: add a selector"));

    const CheckResult scalar = run("/gc/heap/objects:objects:p99 < 1", uint64_value(0));
    CHECK_FALSE(scalar.passed);
    CHECK_THAT(scalar.message, Catch::Contains("selector ':p99' needs a histogram"));
    CHECK_FALSE(run("/gc/gogc:percent:max < 1", float64_value(0)).passed);
}

TEST_CASE("evaluate on an empty histogram", "[check]") {
    const Value empty = histogram_value({.counts = {0, 0, 0}, .buckets = {0, 1e-3, 2e-3, kInf}});
    CHECK(run("/gc/pauses:seconds:count == 0", empty).passed);
    const CheckResult p99 = run("/gc/pauses:seconds:p99 < 1ms", empty);
    CHECK_FALSE(p99.passed);
    CHECK_THAT(p99.message, Catch::Contains("has no samples"));
    CHECK_FALSE(run("/gc/pauses:seconds:max < 1ms", empty).passed);

    const Value unbounded = histogram_value({.counts = {4}, .buckets = {-kInf, kInf}});
    CHECK_THAT(run("/gc/pauses:seconds:p50 < 1ms", unbounded).message, Catch::Contains("undefined"));
}

TEST_CASE("unit_of takes what follows the last ':'", "[units]") {
    CHECK(unit_of("/gc/heap/allocs:bytes") == "bytes");
    CHECK(unit_of("/cpu/classes/user:cpu-seconds") == "cpu-seconds");
    CHECK(unit_of("/gc/pauses:seconds:p99") == "p99");
    CHECK(unit_of("/no/unit").empty());
}

TEST_CASE("human renders bytes in binary units", "[units]") {
    CHECK(human(0, "bytes") == "0 B");
    CHECK(human(512, "bytes") == "512 B");
    CHECK(human(1023, "bytes") == "1023 B");
    CHECK(human(1024, "bytes") == "1 KiB");
    CHECK(human(1536, "bytes") == "1.5 KiB");
    CHECK(human(12.34 * 1048576, "bytes") == "12.3 MiB");
    CHECK(human(3.0 * (1 << 30), "bytes") == "3 GiB");
    CHECK(human(2.5 * 1099511627776.0, "bytes") == "2.5 TiB");
    CHECK(human(-2048, "bytes") == "-2 KiB");
}

TEST_CASE("human renders seconds as ns, µs, ms or s", "[units]") {
    CHECK(human(0, "seconds") == "0s");
    CHECK(human(150e-9, "seconds") == "150ns");
    CHECK(human(0.5e-9, "seconds") == "0.5ns");
    CHECK(human(12.34e-6, "seconds") == "12.3µs");
    CHECK(human(1.5e-3, "seconds") == "1.5ms");
    CHECK(human(2, "cpu-seconds") == "2s");
    CHECK(human(3600, "seconds") == "3600s");
}

TEST_CASE("human renders other units as plain numbers", "[units]") {
    CHECK(human(0, "objects") == "0");
    CHECK(human(3, "objects") == "3");
    CHECK(human(9999, "objects") == "9999");
    CHECK(human(0.25, "ratio") == "0.25");
    CHECK(human(1.0 / 3, "ratio") == "0.333");
    CHECK(human(12345, "objects") == "12.3k");
    CHECK(human(41000, "calls") == "41k");
    CHECK(human(2.5e6, "calls") == "2.5M");
    CHECK(human(4.1e9, "") == "4.1G");
    CHECK(human(std::nan(""), "bytes") == "nan");
    CHECK(human(kInf, "seconds") == "inf");
}

TEST_CASE("human_rate appends /s", "[units]") {
    CHECK(human_rate(12.3 * 1048576, "bytes") == "12.3 MiB/s");
    CHECK(human_rate(0.15, "seconds") == "150ms/s");
    CHECK(human_rate(41000, "objects") == "41k objects/s");
    CHECK(human_rate(4.1, "objects") == "4.1 objects/s");
    CHECK(human_rate(7, "") == "7/s");
}
