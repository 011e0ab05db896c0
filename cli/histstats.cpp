// Statistics over Go-style cumulative histograms: quantiles, totals, windows.
#include "histstats.h"

#include <cmath>
#include <limits>
#include <numeric>

namespace gometrics::cli {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

[[nodiscard]] bool well_formed(const Float64Histogram& h) noexcept {
    return h.buckets.size() == h.counts.size() + 1;
}

// A point fraction (in [0, 1]) of the way through [lo, hi), falling back to
// the finite edge when the other one is infinite.
[[nodiscard]] double interpolate(double lo, double hi, double fraction) noexcept {
    const bool lo_finite = std::isfinite(lo);
    const bool hi_finite = std::isfinite(hi);
    if (lo_finite && hi_finite) return lo + fraction * (hi - lo);
    if (lo_finite) return lo;
    if (hi_finite) return hi;
    return kNaN;
}

}  // namespace

uint64_t total_count(const Float64Histogram& h) noexcept {
    return std::accumulate(h.counts.begin(), h.counts.end(), uint64_t{0});
}

double max_bound(const Float64Histogram& h) noexcept {
    if (!well_formed(h)) return kNaN;
    for (size_t i = h.counts.size(); i > 0; --i)
        if (h.counts[i - 1] != 0) return h.buckets[i];  // bucket i - 1 is [buckets[i - 1], buckets[i])
    return kNaN;
}

double quantile(const Float64Histogram& h, double q) noexcept {
    if (!well_formed(h) || !(q >= 0 && q <= 1)) return kNaN;
    const uint64_t total = total_count(h);
    if (total == 0) return kNaN;

    // The rank of the wanted value among all samples; the bucket holding it is
    // the first non-empty one whose cumulative count reaches it. Skipping empty
    // buckets makes q = 0 land on the lowest sample's bucket, not bucket 0.
    const double rank = q * static_cast<double>(total);
    uint64_t below = 0;
    for (size_t i = 0; i < h.counts.size(); ++i) {
        const uint64_t c = h.counts[i];
        if (c == 0) continue;
        if (static_cast<double>(below + c) >= rank) {
            const double fraction = (rank - static_cast<double>(below)) / static_cast<double>(c);
            return interpolate(h.buckets[i], h.buckets[i + 1], fraction);
        }
        below += c;
    }
    return kNaN;  // unreachable: rank <= total and the last non-empty bucket reaches total
}

std::optional<Float64Histogram> subtract(const Float64Histogram& now,
                                         const Float64Histogram& before) {
    if (!well_formed(now) || now.buckets != before.buckets || now.counts.size() != before.counts.size())
        return std::nullopt;
    Float64Histogram window{.counts = std::vector<uint64_t>(now.counts.size()), .buckets = now.buckets};
    for (size_t i = 0; i < now.counts.size(); ++i)
        window.counts[i] = now.counts[i] > before.counts[i] ? now.counts[i] - before.counts[i] : 0;
    return window;
}

}  // namespace gometrics::cli
