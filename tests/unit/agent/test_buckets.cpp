// The hot path's bucket index agrees with the published edges.
#include <catch2/catch.hpp>

#include <random>

#include "buckets.h"

using namespace gometrics::buckets;

template <size_t N>
void check_index(const std::array<double, N>& edges, size_t (*index)(uint64_t), double scale, uint64_t v) {
    const size_t i = index(v);
    REQUIRE(i + 1 < edges.size());
    const double x = double(v) * scale;
    INFO("value " << v << " bucket " << i << " [" << edges[i] << ", " << edges[i + 1] << ")");
    CHECK(edges[i] <= x);
    CHECK(x < edges[i + 1]);
}

TEST_CASE("size buckets: every value lands between its edges") {
    for (uint64_t v = 0; v < 70000; ++v) check_index(kSizeEdges, [](uint64_t x) { return size_index(x); }, 1.0, v);
    std::mt19937_64 rng(1);
    for (int i = 0; i < 100000; ++i) {
        const uint64_t v = rng() >> (rng() % 64);
        check_index(kSizeEdges, [](uint64_t x) { return size_index(x); }, 1.0, v);
    }
}

TEST_CASE("time buckets: every value lands between its edges") {
    std::mt19937_64 rng(2);
    for (uint64_t v = 0; v < 5000; ++v)
        check_index(kTimeEdgesSeconds, [](uint64_t x) { return time_index(x); }, 1e-9, v);
    for (int i = 0; i < 100000; ++i) {
        const uint64_t v = rng() >> (rng() % 64);
        // Exact powers of two are representable; elsewhere compare in ns.
        const size_t b = time_index(v);
        REQUIRE(b < kTimeCounts);
        CHECK(kTimeEdgesSeconds[b] <= double(v) * 1e-9 * (1 + 1e-12));
        CHECK(double(v) * 1e-9 < kTimeEdgesSeconds[b + 1] * (1 + 1e-12));
    }
}

TEST_CASE("edges increase strictly and end at +Inf") {
    for (size_t i = 1; i < kSizeEdges.size(); ++i) CHECK(kSizeEdges[i] > kSizeEdges[i - 1]);
    for (size_t i = 1; i < kTimeEdgesSeconds.size(); ++i) CHECK(kTimeEdgesSeconds[i] > kTimeEdgesSeconds[i - 1]);
    CHECK(std::isinf(kSizeEdges.back()));
    CHECK(std::isinf(kTimeEdgesSeconds.back()));
}

TEST_CASE("small sizes: exactly the multiples of 8 up to 1016") {
    for (uint64_t v = 0; v < 5000; ++v) CHECK(is_small(v) == (v % 8 == 0 && v <= 1016));
    CHECK_FALSE(is_small(uint64_t{1} << 40));
    CHECK_FALSE(is_small(~uint64_t{0} & ~uint64_t{7}));
    CHECK(kSmallCounts * 8 == 1024);
}
