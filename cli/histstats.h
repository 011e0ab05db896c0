// Statistics over Go-style cumulative histograms: quantiles, totals, windows.
#pragma once

#include <cstdint>
#include <optional>

#include "metrics.h"

namespace gometrics::cli {

// Sum of all bucket counts.
[[nodiscard]] uint64_t total_count(const Float64Histogram& h) noexcept;

// The upper edge of the highest non-empty bucket: no sample lies above it.
// +Inf when that bucket is unbounded; NaN when the histogram is empty or
// malformed.
[[nodiscard]] double max_bound(const Float64Histogram& h) noexcept;

// The q-quantile (q in [0, 1]), interpolated linearly inside the bucket that
// holds the q-th value, as Prometheus' histogram_quantile does. When that
// bucket has an infinite edge the finite edge is returned, since nothing is
// known about where inside an unbounded bucket the values lie.
// NaN when the histogram is empty or malformed, q is outside [0, 1], or the
// bucket is (-Inf, +Inf).
[[nodiscard]] double quantile(const Float64Histogram& h, double q) noexcept;

// The histogram of the values recorded between two cumulative snapshots.
// nullopt when the two do not have the same buckets (or are malformed), since
// counts over different buckets cannot be subtracted. A count that went down
// (the process restarted, or a sampling race) clamps at 0.
[[nodiscard]] std::optional<Float64Histogram> subtract(const Float64Histogram& now,
                                                       const Float64Histogram& before);

}  // namespace gometrics::cli
