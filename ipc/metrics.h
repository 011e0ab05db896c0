// Public value model of the reader library: mirrors Go's runtime/metrics
// (Description, Value, Float64Histogram, Sample). Pure data, no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gometrics {

// Same kinds, same order, as Go's metrics.ValueKind.
enum class ValueKind : uint8_t { Bad = 0, Uint64 = 1, Float64 = 2, Float64Histogram = 3 };

const char* to_string(ValueKind k) noexcept;  // "bad", "uint64", "float64", "float64-histogram"

// How the values of one metric in several processes combine into one value
// for all of them (what `exec` reports for a process tree).
enum class Aggregation : uint8_t {
    Unknown = 0,  // not said: a segment or report from an older agent
    Sum = 1,      // amounts: counters, and what each process holds now
    Max = 2,      // high-water marks and durations of each process: the largest
    None = 3,     // settings and limits of each process: they do not add up
};

const char* to_string(Aggregation a) noexcept;  // "unknown", "sum", "max", "none"
// The inverse of to_string; Unknown for any other text.
Aggregation aggregation_from(std::string_view text) noexcept;

struct Description {
    std::string name;         // "/path:unit", Go's format
    std::string description;  // one sentence
    ValueKind kind = ValueKind::Bad;
    bool cumulative = false;
    Aggregation aggregation = Aggregation::Unknown;
    // Summed from the process's live counters at each read (Snapshot::
    // live_time_ns), not as of its last published snapshot.
    bool live = false;
};

// As in Go: Buckets has one more element than Counts; Counts[i] counts values
// in [Buckets[i], Buckets[i+1]); the outer edges may be -Inf and +Inf.
struct Float64Histogram {
    std::vector<uint64_t> counts;
    std::vector<double> buckets;
};

struct Value {
    ValueKind kind = ValueKind::Bad;
    uint64_t u64 = 0;       // kind == Uint64
    double f64 = 0;         // kind == Float64
    Float64Histogram hist;  // kind == Float64Histogram
};

struct Sample {
    std::string name;
    Value value;
};

}  // namespace gometrics
