// The reader library against segments the real writer made, intact and
// damaged: every damage is a clean Error, never a crash or a hang.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <bit>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "layout.h"
#include "reader.h"
#include "writer.h"

using namespace gometrics;

namespace {

constexpr std::array<double, 4> kEdges{0, 1, 10, std::numeric_limits<double>::infinity()};

const ipc::MetricSpec kSpecs[] = {
    {"/a/count:objects", "A counter.", layout::kKindUint64, true, {}, layout::kAggSum},
    {"/b/ratio:seconds", "A float.", layout::kKindFloat64, false, {}},  // as an older agent: aggregation not said
    {"/c/dist:bytes", "A histogram.", layout::kKindFloat64Histogram, true, kEdges, layout::kAggSum},
};

// A pid no process can have (above the kernel's PID_MAX_LIMIT of 2^22).
int fake_pid() { return (1 << 22) + 1000 + static_cast<int>(getpid() % 100000); }

struct TestSegment {
    ipc::SegmentWriter w;
    int pid = fake_pid();
    TestSegment() {
        REQUIRE(w.create(kSpecs, pid, 42, 7, 1000) == 0);
        const uint64_t words[] = {5, std::bit_cast<uint64_t>(2.5), 1, 2, 3};
        REQUIRE(w.payload_words() == 5);
        w.publish(words, 1, 99);
    }
    ~TestSegment() { w.unlink(); }
    std::string path() const { return segment_path(pid); }
};

std::vector<char> slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), {}};
}

std::string write_temp(const std::vector<char>& bytes) {
    char name[] = "/tmp/gometrics-test-XXXXXX";
    const int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
    close(fd);
    return name;
}

// Opens a damaged copy; returns the error message ("" if it opened and read).
std::string open_damaged(std::vector<char> bytes) {
    const std::string path = write_temp(bytes);
    std::string msg;
    if (auto r = Reader::open_path(path); !r) {
        msg = r.error().message;
    } else if (auto s = r->ReadAll({0, 100}); !s) {
        msg = s.error().message;
    }
    unlink(path.c_str());
    return msg;
}

template <class T>
void poke(std::vector<char>& b, size_t off, T v) {
    std::memcpy(b.data() + off, &v, sizeof v);
}

}  // namespace

TEST_CASE("a segment round-trips through the writer and the reader") {
    TestSegment seg;
    auto r = Reader::open_path(seg.path(), seg.pid);
    REQUIRE(r);
    REQUIRE(r->All().size() == 3);
    CHECK(r->All()[0].name == "/a/count:objects");
    CHECK(r->All()[0].cumulative);
    CHECK(r->All()[1].kind == ValueKind::Float64);
    CHECK(r->All()[2].description == "A histogram.");
    CHECK(r->proc_start_ticks() == 42);

    std::vector<Sample> s{{"/a/count:objects", {}}, {"/b/ratio:seconds", {}}, {"/c/dist:bytes", {}}, {"/no/such:thing", {}}};
    REQUIRE(r->Read(s, {0, 100}));
    CHECK(s[0].value.u64 == 5);
    CHECK(s[1].value.f64 == 2.5);
    REQUIRE(s[2].value.kind == ValueKind::Float64Histogram);
    CHECK(s[2].value.hist.counts == std::vector<uint64_t>{1, 2, 3});
    CHECK(s[2].value.hist.buckets.size() == 4);
    CHECK(std::isinf(s[2].value.hist.buckets.back()));
    CHECK(s[3].value.kind == ValueKind::Bad);

    auto snap = r->ReadAll({0, 100});
    REQUIRE(snap);
    CHECK(snap->seq == 1);
    CHECK(snap->time_ns == 99);
}

TEST_CASE("each Description says how it aggregates; an older or newer agent's byte reads as Unknown") {
    TestSegment seg;
    auto r = Reader::open_path(seg.path(), seg.pid);
    REQUIRE(r);
    CHECK(r->All()[0].aggregation == Aggregation::Sum);
    CHECK(r->All()[1].aggregation == Aggregation::Unknown);  // the byte an older writer left zero
    CHECK(r->All()[2].aggregation == Aggregation::Sum);
    CHECK(std::string(to_string(Aggregation::None)) == "none");
    CHECK(aggregation_from("max") == Aggregation::Max);
    CHECK(aggregation_from("average") == Aggregation::Unknown);

    auto bytes = slurp(seg.path());
    using H = layout::SegmentHeader;
    using D = layout::DescEntry;
    const uint32_t desc = *reinterpret_cast<const uint32_t*>(bytes.data() + offsetof(H, desc_offset));
    poke<uint8_t>(bytes, desc + offsetof(D, aggregation), 200);  // a value from a newer agent
    const std::string path = write_temp(bytes);
    auto newer = Reader::open_path(path);
    unlink(path.c_str());
    REQUIRE(newer);
    CHECK(newer->All()[0].aggregation == Aggregation::Unknown);
}

TEST_CASE("the process state reads as named flags") {
    TestSegment seg;
    auto r = Reader::open_path(seg.path(), seg.pid);
    REQUIRE(r);
    CHECK(!r->state().exited);
    seg.w.set_state(layout::kStateExited | layout::kStateNotInterposed, true);
    CHECK(r->state().exited);
    CHECK(r->state().not_interposed);
    CHECK(!r->state().publisher_running);
    CHECK(!r->state().publisher_lazy);
}

TEST_CASE("the pid in the segment must be the pid asked for") {
    TestSegment seg;
    auto r = Reader::open_path(seg.path(), seg.pid + 1);
    REQUIRE(!r);
    CHECK_THAT(r.error().message, Catch::Contains("names pid"));
}

TEST_CASE("damaged segments are clean errors") {
    TestSegment seg;
    const auto good = slurp(seg.path());
    REQUIRE(open_damaged(good).empty());
    using H = layout::SegmentHeader;

    SECTION("empty and truncated") {
        CHECK_THAT(open_damaged({}), Catch::Contains("truncated"));
        CHECK_THAT(open_damaged({good.begin(), good.begin() + 100}), Catch::Contains("truncated"));
        CHECK_THAT(open_damaged({good.begin(), good.end() - 8}), Catch::Contains("truncated"));
    }
    SECTION("zeroed") {
        CHECK_THAT(open_damaged(std::vector<char>(good.size(), 0)), Catch::Contains("not initialised"));
    }
    SECTION("wrong magic and version") {
        auto b = good;
        poke<uint64_t>(b, offsetof(H, magic), 0x1234);
        CHECK_THAT(open_damaged(b), Catch::Contains("bad magic"));
        b = good;
        poke<uint32_t>(b, offsetof(H, version), 99);
        CHECK_THAT(open_damaged(b), Catch::Contains("version"));
    }
    SECTION("absurd counts and offsets") {
        auto b = good;
        poke<uint32_t>(b, offsetof(H, desc_count), 0xffffffffu);
        CHECK_THAT(open_damaged(b), Catch::Contains("absurd metric count"));
        b = good;
        poke<uint32_t>(b, offsetof(H, desc_count), 4000);
        CHECK_THAT(open_damaged(b), Catch::Contains("outside"));
        b = good;
        poke<uint32_t>(b, offsetof(H, strings_size), 0x7fffffffu);
        CHECK_THAT(open_damaged(b), Catch::Contains("outside"));
        b = good;
        poke<uint32_t>(b, offsetof(H, values_offset), 3);
        CHECK_THAT(open_damaged(b), Catch::Contains("outside"));
        b = good;
        poke<uint64_t>(b, offsetof(H, total_size), ~uint64_t{0});
        CHECK_THAT(open_damaged(b), Catch::Contains("truncated"));
    }
    SECTION("bad descriptors") {
        const uint32_t desc = *reinterpret_cast<const uint32_t*>(good.data() + offsetof(H, desc_offset));
        using D = layout::DescEntry;
        auto b = good;
        poke<uint32_t>(b, desc + offsetof(D, name_len), 1u << 30);
        CHECK_THAT(open_damaged(b), Catch::Contains("outside the string table"));
        b = good;
        poke<uint32_t>(b, desc + 2 * sizeof(D) + offsetof(D, bucket_count), 1u << 20);
        CHECK_THAT(open_damaged(b), Catch::Contains("histogram buckets"));
        b = good;
        poke<uint32_t>(b, desc + offsetof(D, value_offset), 1u << 30);
        CHECK_THAT(open_damaged(b), Catch::Contains("values region"));
        b = good;
        const uint32_t bounds = *reinterpret_cast<const uint32_t*>(good.data() + offsetof(H, bounds_offset));
        poke<double>(b, bounds + 8, std::numeric_limits<double>::quiet_NaN());
        CHECK_THAT(open_damaged(b), Catch::Contains("do not increase"));
        b = good;
        const uint32_t strings = *reinterpret_cast<const uint32_t*>(good.data() + offsetof(H, strings_offset));
        b[strings] = 'x';  // a name must start with '/'
        CHECK_THAT(open_damaged(b), Catch::Contains("malformed name"));
    }
    SECTION("a writer that died mid-update") {
        auto b = good;
        poke<uint32_t>(b, offsetof(H, seq), 3);  // odd forever
        CHECK_THAT(open_damaged(b), Catch::Contains("never settled"));
    }
    SECTION("random bytes, and random damage to a good segment") {
        std::mt19937 rng(7);
        for (int i = 0; i < 300; ++i) {
            std::vector<char> b(rng() % 2048);
            for (auto& c : b) c = static_cast<char>(rng());
            CHECK(!open_damaged(b).empty());
        }
        for (int i = 0; i < 2000; ++i) {
            auto b = good;
            for (int k = 0; k < 1 + int(rng() % 4); ++k) b[rng() % b.size()] = static_cast<char>(rng());
            (void)open_damaged(b);  // any outcome but a crash or a hang
        }
    }
}

TEST_CASE("a reader racing a writer only ever sees whole snapshots") {
    TestSegment seg;
    const uint64_t first[] = {1, std::bit_cast<uint64_t>(1.0), 1, 1, 1};
    seg.w.publish(first, 1, 1);
    auto r = Reader::open_path(seg.path(), seg.pid);
    REQUIRE(r);
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        for (uint64_t i = 2; !stop.load(); ++i) {
            const uint64_t words[] = {i, std::bit_cast<uint64_t>(double(i)), i, i, i};
            seg.w.publish(words, i, i);
        }
    });
    long checked = 0, torn = 0, failed = 0;
    for (int i = 0; i < 20000; ++i) {
        auto s = r->ReadAll({0, 1000000});
        if (!s) {
            ++failed;
            continue;
        }
        const uint64_t v = s->values[0].u64;
        bool same = s->values[1].f64 == double(v) && s->seq == v && s->time_ns == v;
        for (auto c : s->values[2].hist.counts) same = same && c == v;
        torn += !same;
        ++checked;
    }
    stop = true;
    writer.join();
    CHECK(failed == 0);
    CHECK(torn == 0);
    CHECK(checked == 20000);
}

namespace {
int segment_mappings(int pid) {
    std::ifstream maps("/proc/self/maps");
    const std::string name = "/gometrics." + std::to_string(pid);
    int n = 0;
    for (std::string line; std::getline(maps, line);) n += line.ends_with(name);
    return n;
}
}  // namespace

TEST_CASE("slots are mapped a chunk at a time as they are reserved, and fold from any chunk") {
    // 40 slots of 3008 bytes, which does not divide a page: chunks of 8,
    // whose end pages are also their neighbours'.
    constexpr uint32_t kSlots = 40, kSize = 3008, kWords = kSize / 8;
    const layout::FoldTerm terms[] = {{0, 0, 0, 0, 0, 0, 1}, {0, kWords - 1, 0, 0, 0, 0, 1000}};
    const ipc::LiveSpec live{kSlots, kSize, static_cast<uint32_t>(std::size(terms)),
                             [](void* ctx, layout::FoldTerm* out) noexcept { std::memcpy(out, ctx, sizeof terms); },
                             const_cast<layout::FoldTerm*>(terms)};
    ipc::SegmentWriter w;
    const int pid = fake_pid();
    REQUIRE(w.create(kSpecs, pid, 42, 7, 1000, 0, &live) == 0);
    const uint64_t words[] = {0, 0, 0, 0, 0};
    w.publish(words, 1, 99, words);
    CHECK(segment_mappings(pid) == 1);
    CHECK(w.slot_address(0) == nullptr);
    uint64_t* slots[kSlots] = {};
    uint64_t want = 0;
    const auto take = [&](uint32_t i) {
        slots[i] = static_cast<uint64_t*>(w.reserve_slot(i));
        REQUIRE(slots[i]);
        CHECK(w.slot_address(i) == slots[i]);
        slots[i][0] = i + 1;  // the slot's first and last words
        slots[i][kWords - 1] = 2;
        w.slot_used(i);
        want += i + 1 + 2000;
    };
    take(17);  // out of order: the writer does not care
    CHECK(segment_mappings(pid) == 2);
    CHECK(w.slot_address(15) == nullptr);  // another chunk
    for (uint32_t i = 0; i < kSlots; ++i)
        if (i != 17) take(i);
    CHECK(segment_mappings(pid) == 1 + 5);
    CHECK(w.reserve_slot(kSlots) == nullptr);
    for (uint32_t i = 0; i < kSlots; ++i) CHECK(slots[i][0] == i + 1);  // no slot overlaps another
    auto r = Reader::open_path(segment_path(pid), pid);
    REQUIRE(r);
    auto s = r->ReadAll({0, 100});
    REQUIRE(s);
    CHECK(s->values[0].u64 == want);  // each word where the file says it is
    w.unlink();
}

TEST_CASE("the live fold: remainder plus the slots' words; a negative count reads 0") {
    // /a/count:objects = allocations (slot word 0, pass 1) - frees (slot
    // word 1, pass 0), as the agent folds live objects.
    const layout::FoldTerm terms[] = {
        {0, 1, 0, 0, 0, 0, static_cast<uint64_t>(int64_t{-1})},
        {0, 0, 1, 0, 0, 0, 1},
    };
    const ipc::LiveSpec live{2, 64, static_cast<uint32_t>(std::size(terms)),
                             [](void* ctx, layout::FoldTerm* out) noexcept { std::memcpy(out, ctx, sizeof terms); },
                             const_cast<layout::FoldTerm*>(terms)};
    ipc::SegmentWriter w;
    const int pid = fake_pid();
    REQUIRE(w.create(kSpecs, pid, 42, 7, 1000, 0, &live) == 0);
    const uint64_t words[] = {5, std::bit_cast<uint64_t>(2.5), 1, 2, 3};
    const uint64_t remainder[] = {1, 0, 0, 0, 0};  // counted where no slot was
    w.publish(words, 1, 99, remainder);
    auto* slot = static_cast<uint64_t*>(w.reserve_slot(0));
    REQUIRE(slot);
    slot[0] = 10, slot[1] = 3;
    w.slot_used(0);
    auto r = Reader::open_path(segment_path(pid), pid);
    REQUIRE(r);
    auto s = r->ReadAll({0, 100});
    REQUIRE(s);
    CHECK(s->values[0].u64 == 1 + 10 - 3);
    CHECK(s->values[1].f64 == 2.5);  // not folded
    // More frees than allocations, as a reader sees when a block allocated on
    // a private slot (counted only in the snapshot) is freed on a shared one
    // after it: the count reads 0, the other values stay fresh.
    slot[1] = 12;
    s = r->ReadAll({0, 100});
    REQUIRE(s);
    CHECK(s->values[0].u64 == 0);
    CHECK(s->values[1].f64 == 2.5);
    w.unlink();
}
