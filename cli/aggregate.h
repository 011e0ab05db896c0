// Combining the metrics of several processes into one set (`exec` over a
// process tree), as each metric's Description says (Aggregation).
#pragma once

#include <utility>
#include <vector>

#include "metrics.h"

namespace gometrics::cli {

// The metrics of one process, values parallel to descs.
struct Metrics {
    std::vector<Description> descs;
    std::vector<Value> values;
};

// d.aggregation, or for a Description that does not say (an older agent's
// segment or report) the rule the table follows, judged from what it does
// say: cumulative sums; a gauge named as a peak takes the largest, one named
// as a limit does not add up; other gauges sum.
Aggregation aggregation_of(const Description& d);

// One value per name over all processes, sorted by name: Sum adds (histograms
// with the same buckets), Max takes the largest, None keeps the value all
// processes agree on and leaves out one they differ on.
std::vector<std::pair<Description, Value>> aggregate(const std::vector<const Metrics*>& processes);

}  // namespace gometrics::cli
