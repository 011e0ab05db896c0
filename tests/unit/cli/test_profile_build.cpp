// Unit tests of cli/profile_build: Go's heap scaling, the profiles' types,
// periods and values, and the GOMETRICS_PROFILE_REPORT parser.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <unistd.h>

#include "profile_build.h"

using namespace gometrics;
using cli::ProfileKind;

namespace {

ProfileStack heap_stack(std::vector<uint64_t> pcs, uint64_t objects, uint64_t bytes, uint64_t freed_objects,
                        uint64_t freed_bytes) {
    ProfileStack s;
    s.kind = ProfileStack::kHeap;
    s.pcs = std::move(pcs);
    s.alloc_objects = objects;
    s.alloc_bytes = bytes;
    s.free_objects = freed_objects;
    s.free_bytes = freed_bytes;
    return s;
}

ProfileStack mutex_stack(std::vector<uint64_t> pcs, uint64_t contentions, uint64_t delay_ns) {
    ProfileStack s;
    s.kind = ProfileStack::kMutex;
    s.pcs = std::move(pcs);
    s.contentions = contentions;
    s.delay_ns = delay_ns;
    return s;
}

Profile raw_profile() {
    Profile p;
    p.time_ns = 2'000'000'000;
    p.heap_rate = 1024;
    p.mutex_fraction = 8;
    p.stacks = {heap_stack({0x1000, 0x2000}, 4, 4096, 1, 1024), mutex_stack({0x3000}, 3, 3000),
                heap_stack({0x1100}, 2, 64, 2, 64)};
    return p;
}

cli::ProfileSource source() { return {42, 1'000'000'000, {}}; }

std::vector<std::string> types(const pprof::Profile& p) {
    std::vector<std::string> out;
    for (const auto& t : p.sample_types) out.push_back(t.type + "/" + t.unit);
    return out;
}

}  // namespace

TEST_CASE("heap samples are scaled as Go's scaleHeapSample") {
    // One object of exactly the rate: sampled with probability 1 - 1/e.
    const double scale = 1 / (1 - std::exp(-1.0));
    auto [n, b] = cli::scale_heap_sample(10, 10 * 1024, 1024);
    CHECK(n == static_cast<int64_t>(10 * scale));
    CHECK(b == static_cast<int64_t>(10 * 1024 * scale));
    // Small objects stand for about rate / size each.
    auto [n2, b2] = cli::scale_heap_sample(1, 16, 512 * 1024);
    CHECK(n2 == Approx(512 * 1024 / 16).epsilon(0.001));
    CHECK(b2 == Approx(512 * 1024).epsilon(0.001));
    // Huge objects are always sampled: no scaling.
    auto [n3, b3] = cli::scale_heap_sample(3, uint64_t{3} << 30, 1024);
    CHECK(n3 == 3);
    CHECK(b3 == int64_t{3} << 30);
    CHECK(cli::scale_heap_sample(0, 0, 1024) == std::pair<int64_t, int64_t>{0, 0});
    CHECK(cli::scale_heap_sample(5, 50, 1) == std::pair<int64_t, int64_t>{5, 50});
    CHECK(cli::scale_heap_sample(5, 50, 0) == std::pair<int64_t, int64_t>{5, 50});
}

TEST_CASE("heap profile: Go's types and period, in use = allocated - freed") {
    auto built = cli::build_profile(raw_profile(), ProfileKind::Heap, source());
    REQUIRE(built);
    const pprof::Profile& p = *built;
    CHECK(types(p) == std::vector<std::string>{"alloc_objects/count", "alloc_space/bytes", "inuse_objects/count",
                                               "inuse_space/bytes"});
    CHECK(p.period_type.type == "space");
    CHECK(p.period_type.unit == "bytes");
    CHECK(p.period == 1024);
    CHECK(p.default_sample_type.empty());  // pprof's default, the last type: inuse_space
    CHECK(p.time_nanos == 2'000'000'000);
    CHECK(p.duration_nanos == 1'000'000'000);
    REQUIRE(p.samples.size() == 2);  // the mutex stack is not in it
    const auto alloc = cli::scale_heap_sample(4, 4096, 1024);
    const auto inuse = cli::scale_heap_sample(3, 3072, 1024);
    CHECK(p.samples[0].stack == std::vector<uint64_t>{0x1000, 0x2000});
    CHECK(p.samples[0].values == std::vector<int64_t>{alloc.first, alloc.second, inuse.first, inuse.second});
    // All freed: allocated, nothing in use.
    CHECK(p.samples[1].values[0] > 0);
    CHECK(p.samples[1].values[2] == 0);
    CHECK(p.samples[1].values[3] == 0);
    REQUIRE(pprof::encode(p));
}

TEST_CASE("allocs profile: the same values, shown as alloc_space") {
    auto heap = cli::build_profile(raw_profile(), ProfileKind::Heap, source());
    auto allocs = cli::build_profile(raw_profile(), ProfileKind::Allocs, source());
    REQUIRE(allocs);
    CHECK(allocs->default_sample_type == "alloc_space");
    REQUIRE(allocs->samples.size() == heap->samples.size());
    for (size_t i = 0; i < allocs->samples.size(); ++i)
        CHECK(allocs->samples[i].values == heap->samples[i].values);
}

TEST_CASE("mutex profile: scaled by the fraction, period 1 as Go writes it") {
    auto built = cli::build_profile(raw_profile(), ProfileKind::Mutex, source());
    REQUIRE(built);
    const pprof::Profile& p = *built;
    CHECK(types(p) == std::vector<std::string>{"contentions/count", "delay/nanoseconds"});
    CHECK(p.period_type.type == "contentions");
    CHECK(p.period_type.unit == "count");
    CHECK(p.period == 1);
    REQUIRE(p.samples.size() == 1);
    CHECK(p.samples[0].stack == std::vector<uint64_t>{0x3000});
    CHECK(p.samples[0].values == std::vector<int64_t>{24, 24000});
}

TEST_CASE("a kind the process does not sample is an error") {
    Profile raw = raw_profile();
    raw.heap_rate = 0;
    auto heap = cli::build_profile(raw, ProfileKind::Heap, source());
    CHECK_FALSE(heap);
    CHECK(heap.error().message.find("GOMETRICS_PROFILE_RATE=0") != std::string::npos);
    CHECK(cli::build_profile(raw, ProfileKind::Mutex, source()));
    raw.mutex_fraction = 0;
    auto mutex = cli::build_profile(raw, ProfileKind::Mutex, source());
    CHECK_FALSE(mutex);
    CHECK(mutex.error().message.find("GOMETRICS_MUTEX_PROFILE_FRACTION=0") != std::string::npos);
}

TEST_CASE("dropped samples are said in a comment") {
    Profile raw = raw_profile();
    raw.dropped_samples = 7;
    auto built = cli::build_profile(raw, ProfileKind::Heap, source());
    REQUIRE(built);
    bool said = false;
    for (const auto& c : built->comments) said |= c.find("7 samples dropped") != std::string::npos;
    CHECK(said);
}

TEST_CASE("profile kinds by name") {
    CHECK(cli::parse_profile_kind("heap") == ProfileKind::Heap);
    CHECK(cli::parse_profile_kind("allocs") == ProfileKind::Allocs);
    CHECK(cli::parse_profile_kind("mutex") == ProfileKind::Mutex);
    CHECK_FALSE(cli::parse_profile_kind("goroutine"));
    CHECK(cli::profile_kind_name(ProfileKind::Allocs) == "allocs");
}

TEST_CASE("profile reports are parsed, mappings rebuilt, the executable first") {
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self);
    REQUIRE(n > 0);
    const std::string self_path(self, static_cast<size_t>(n));
    const std::string json = R"({"format": "gometrics-profile-report", "version": 1, "pid": 77, "time_ns": 5,
        "start_time_ns": 2, "heap_rate": 4096, "mutex_fraction": 8, "dropped_samples": 1, "untracked_frees": 2,
        "exe": ")" + self_path + R"(",
        "stacks": [{"kind": "heap", "pcs": [4198400, 4198500], "alloc_objects": 3, "alloc_bytes": 300,
                    "free_objects": 1, "free_bytes": 100, "contentions": 0, "delay_ns": 0},
                   {"kind": "mutex", "pcs": [4198600], "alloc_objects": 0, "alloc_bytes": 0,
                    "free_objects": 0, "free_bytes": 0, "contentions": 2, "delay_ns": 900}],
        "maps": ["7f0000000000-7f0000001000 r-xp 00000000 08:01 12 /usr/lib/x86_64-linux-gnu/libc.so.6",
                 "00401000-00402000 r-xp 00001000 08:01 13 )" + self_path + R"("]})";
    auto parsed = cli::parse_profile_report(json);
    REQUIRE(parsed);
    const auto& r = *parsed;
    CHECK(r.source.pid == 77);
    CHECK(r.source.start_time_ns == 2);
    CHECK(r.profile.time_ns == 5);
    CHECK(r.profile.heap_rate == 4096);
    CHECK(r.profile.mutex_fraction == 8);
    CHECK(r.profile.dropped_samples == 1);
    CHECK(r.profile.untracked_frees == 2);
    REQUIRE(r.profile.stacks.size() == 2);
    CHECK(r.profile.stacks[0].kind == ProfileStack::kHeap);
    CHECK(r.profile.stacks[0].pcs == std::vector<uint64_t>{4198400, 4198500});
    CHECK(r.profile.stacks[0].free_bytes == 100);
    CHECK(r.profile.stacks[1].kind == ProfileStack::kMutex);
    CHECK(r.profile.stacks[1].delay_ns == 900);
    REQUIRE(r.source.mappings.size() == 2);
    CHECK(r.source.mappings[0].file == self_path);
    CHECK(r.source.mappings[0].start == 0x401000);
    CHECK(r.source.mappings[0].offset == 0x1000);
    CHECK_FALSE(r.source.mappings[0].build_id.empty());  // meson links with --build-id
    CHECK(r.source.mappings[1].file == "/usr/lib/x86_64-linux-gnu/libc.so.6");
}

TEST_CASE("bad profile reports are one-line errors") {
    for (const char* text : {"", "[]", "{\"format\": \"something else\"}",
                             R"({"format": "gometrics-profile-report", "version": 2})",
                             R"({"format": "gometrics-profile-report", "version": 1, "pid": 1})",
                             R"({"format": "gometrics-profile-report", "version": 1, "pid": "x"})"}) {
        auto parsed = cli::parse_profile_report(text);
        CHECK_FALSE(parsed);
        CHECK(parsed.error().message.find('\n') == std::string::npos);
    }
}
