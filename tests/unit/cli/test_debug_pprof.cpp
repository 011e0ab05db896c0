// serve's /debug/pprof/ handler without HTTP: delta profiles and the answers
// to bad requests, which need no process.
#include <catch2/catch.hpp>

#include "debug_pprof.h"

using namespace gometrics;
using namespace gometrics::cli;

namespace {

pprof::Profile two_types(int64_t time_ns, std::vector<pprof::Sample> samples) {
    pprof::Profile p;
    p.sample_types = pprof::mutex_sample_types();
    p.time_nanos = time_ns;
    p.samples = std::move(samples);
    return p;
}

debug_pprof::Handler handler(int write_timeout_s = 60) {
    return debug_pprof::Handler({.pids = {424242}, .fresh_timeout_ms = 0, .write_timeout_s = write_timeout_s,
                                 .symbolize = false, .max_waiting = 1},
                                [](std::chrono::seconds) { return true; });
}

}  // namespace

TEST_CASE("a delta profile is p1 minus p0, stack by stack, without unchanged stacks") {
    const pprof::Profile p0 = two_types(1'000'000'000, {{{1, 2}, {3, 300}}, {{5}, {1, 10}}, {{7}, {4, 40}}});
    // Stack {1,2} twice in p1: summed before the subtraction.
    const pprof::Profile p1 =
        two_types(3'500'000'000, {{{1, 2}, {4, 400}}, {{1, 2}, {1, 50}}, {{5}, {1, 10}}, {{9}, {2, 20}}});
    const pprof::Profile d = debug_pprof::delta(p0, p1);
    REQUIRE(d.samples.size() == 3);
    CHECK(d.samples[0].stack == std::vector<uint64_t>{1, 2});
    CHECK(d.samples[0].values == std::vector<int64_t>{2, 150});
    CHECK(d.samples[1].stack == std::vector<uint64_t>{9});
    CHECK(d.samples[1].values == std::vector<int64_t>{2, 20});
    // A stack only p0 had (in-use values can shrink) goes negative, as in Go.
    CHECK(d.samples[2].stack == std::vector<uint64_t>{7});
    CHECK(d.samples[2].values == std::vector<int64_t>{-4, -40});
    CHECK(d.time_nanos == 3'500'000'000);
    CHECK(d.duration_nanos == 2'500'000'000);
}

TEST_CASE("bad /debug/pprof requests are one-line errors that go tool pprof shows") {
    auto h = handler(10);
    const auto check = [&](std::string_view name, debug_pprof::Params params, int status, std::string_view text) {
        const debug_pprof::Reply r = h.profile(name, params);
        INFO(r.body);
        CHECK(r.status == status);
        CHECK(r.go_pprof_error);
        CHECK(r.content_type == "text/plain; charset=utf-8");
        CHECK(r.content_disposition.empty());
        CHECK(r.body.find(text) != std::string::npos);
        CHECK(r.body.find('\n') == r.body.size() - 1);
    };
    check("goroutine", {}, 404, "Unknown profile");
    check("heap", {{"seconds", "0"}}, 400, "positive integer");
    check("heap", {{"seconds", "1.5"}}, 400, "positive integer");
    check("heap", {{"seconds", "99999999999999999999"}}, 400, "positive integer");
    check("heap", {{"seconds", "10"}}, 400, "below 10");
    check("heap", {{"seconds", "2"}, {"debug", "1"}}, 400, "incompatible");
    check("heap", {{"debug", "-1"}}, 400, "\"debug\"");
    check("heap", {{"pid", "0"}}, 400, "\"pid\"");
    check("heap", {{"pid", "1"}}, 404, "not served here");
    // The only --pid is implicit; it is not running.
    check("mutex", {}, 404, "424242");
}
