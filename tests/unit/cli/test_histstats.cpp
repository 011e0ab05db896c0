// Unit tests for cli/histstats: total_count, max_bound, quantile, subtract.
#include <cmath>
#include <limits>

#include <catch2/catch.hpp>

#include "histstats.h"

using gometrics::Float64Histogram;
using namespace gometrics::cli;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Buckets [0,10) [10,20) [20,30) [30,40) holding 1, 2, 3, 4 values.
Float64Histogram ten_wide() { return {.counts = {1, 2, 3, 4}, .buckets = {0, 10, 20, 30, 40}}; }

// Go's time-histogram shape: unbounded on both sides.
Float64Histogram unbounded(uint64_t below, uint64_t inside, uint64_t above) {
    return {.counts = {below, inside, above}, .buckets = {-kInf, 1, 2, kInf}};
}

}  // namespace

TEST_CASE("total_count sums the buckets", "[histstats]") {
    CHECK(total_count(ten_wide()) == 10);
    CHECK(total_count(Float64Histogram{}) == 0);
    CHECK(total_count({.counts = {0, 0}, .buckets = {0, 1, 2}}) == 0);
}

TEST_CASE("max_bound is the upper edge of the highest non-empty bucket", "[histstats]") {
    CHECK(max_bound(ten_wide()) == 40);
    CHECK(max_bound({.counts = {5, 0, 2, 0}, .buckets = {0, 10, 20, 30, 40}}) == 30);
    CHECK(max_bound(unbounded(1, 0, 0)) == 1);
    CHECK(max_bound(unbounded(0, 0, 1)) == kInf);
    CHECK(std::isnan(max_bound(unbounded(0, 0, 0))));
    CHECK(std::isnan(max_bound({.counts = {1, 1}, .buckets = {0, 1}})));  // malformed
}

TEST_CASE("quantile interpolates inside the bucket", "[histstats]") {
    const Float64Histogram h = ten_wide();
    CHECK(quantile(h, 0) == Approx(0));
    CHECK(quantile(h, 0.1) == Approx(10));  // 1st value of 10: end of bucket 0
    CHECK(quantile(h, 0.2) == Approx(15));  // half-way through [10,20)
    CHECK(quantile(h, 0.5) == Approx(26.666667));
    CHECK(quantile(h, 0.8) == Approx(35));
    CHECK(quantile(h, 1) == Approx(40));
}

TEST_CASE("quantile skips empty buckets", "[histstats]") {
    const Float64Histogram h{.counts = {0, 4, 0, 0, 4, 0}, .buckets = {0, 1, 2, 3, 4, 5, 6}};
    CHECK(quantile(h, 0) == Approx(1));  // the lowest sample's bucket, not bucket 0
    CHECK(quantile(h, 0.5) == Approx(2));
    CHECK(quantile(h, 0.75) == Approx(4.5));
    CHECK(quantile(h, 1) == Approx(5));
}

TEST_CASE("quantile in an unbounded bucket returns its finite edge", "[histstats]") {
    CHECK(quantile(unbounded(10, 0, 0), 0.5) == 1);
    CHECK(quantile(unbounded(0, 0, 10), 0.5) == 2);
    CHECK(quantile(unbounded(0, 0, 10), 1) == 2);
    CHECK(quantile(unbounded(5, 10, 5), 0.5) == Approx(1.5));
    CHECK(quantile(unbounded(5, 10, 5), 0.99) == 2);
    CHECK(std::isnan(quantile({.counts = {3}, .buckets = {-kInf, kInf}}, 0.5)));
}

TEST_CASE("quantile is NaN without a defined answer", "[histstats]") {
    CHECK(std::isnan(quantile(Float64Histogram{}, 0.5)));
    CHECK(std::isnan(quantile(unbounded(0, 0, 0), 0.5)));
    CHECK(std::isnan(quantile(ten_wide(), -0.1)));
    CHECK(std::isnan(quantile(ten_wide(), 1.1)));
    CHECK(std::isnan(quantile(ten_wide(), std::numeric_limits<double>::quiet_NaN())));
    CHECK(std::isnan(quantile({.counts = {1, 2}, .buckets = {0, 1}}, 0.5)));  // malformed
}

TEST_CASE("subtract gives the window between two snapshots", "[histstats]") {
    const Float64Histogram before{.counts = {1, 1, 1, 1}, .buckets = {0, 10, 20, 30, 40}};
    const auto window = subtract(ten_wide(), before);
    REQUIRE(window.has_value());
    CHECK(window->counts == std::vector<uint64_t>{0, 1, 2, 3});
    CHECK(window->buckets == ten_wide().buckets);

    const auto same = subtract(ten_wide(), ten_wide());
    REQUIRE(same.has_value());
    CHECK(total_count(*same) == 0);
}

TEST_CASE("subtract clamps counts that went down at 0", "[histstats]") {
    const Float64Histogram before{.counts = {5, 0, 9, 4}, .buckets = {0, 10, 20, 30, 40}};
    const auto window = subtract(ten_wide(), before);
    REQUIRE(window.has_value());
    CHECK(window->counts == std::vector<uint64_t>{0, 2, 0, 0});
}

TEST_CASE("subtract refuses different buckets", "[histstats]") {
    const Float64Histogram h = ten_wide();
    CHECK_FALSE(subtract(h, {.counts = {1, 2, 3, 4}, .buckets = {0, 10, 20, 30, 50}}).has_value());
    CHECK_FALSE(subtract(h, {.counts = {1, 2, 3}, .buckets = {0, 10, 20, 30}}).has_value());
    CHECK_FALSE(subtract(h, Float64Histogram{}).has_value());
    CHECK_FALSE(subtract(h, {.counts = {1, 2, 3}, .buckets = h.buckets}).has_value());  // malformed
    CHECK_FALSE(subtract({.counts = {1}, .buckets = {0}}, {.counts = {1}, .buckets = {0}}).has_value());
}
