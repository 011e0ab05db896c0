// Human-friendly rendering of metric values according to their Go unit.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace gometrics::cli {

// The unit of a Go metric name: what follows its last ':'
// ("/gc/heap/allocs:bytes" -> "bytes"); empty when there is no ':'.
[[nodiscard]] std::string_view unit_of(std::string_view metric_name) noexcept;

// Renders v with three significant digits, never fewer than its integer
// digits, trailing zeros dropped (so integers print without decimals):
//   bytes                 -> binary units:  "512 B", "1.5 KiB", "12.3 MiB"
//   seconds, cpu-seconds  -> "150ns", "12.3µs", "1.5ms", "2s"
//   anything else         -> the bare number, with a k/M/G suffix from
//                            10,000 up: "3", "0.25", "9999", "12.3k", "4.1G".
// Other units are left out since the metric name already carries them.
// NaN and infinities print as "nan", "inf", "-inf", without a unit.
[[nodiscard]] std::string human(double v, std::string_view unit);

// A rate, as human() plus "/s"; other units are spelled out:
// "12.3 MiB/s", "150ms/s", "4.1k objects/s".
[[nodiscard]] std::string human_rate(double per_second, std::string_view unit);

// Seconds since a CLOCK_REALTIME start in nanoseconds (0 for one in the
// future), and as "42s", "3m07s", "5h02m", "2d03h".
[[nodiscard]] double uptime_seconds(uint64_t start_time_ns);
[[nodiscard]] std::string human_uptime(double seconds);

}  // namespace gometrics::cli
