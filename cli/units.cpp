// Human-friendly rendering of metric values according to their Go unit.
#include "units.h"

#include <algorithm>
#include <array>
#include <cmath>

#include <fmt/format.h>

#include "clocks.h"

namespace gometrics::cli {

namespace {

struct Scale {
    double factor;  // how many base units (bytes, seconds, ones) one of these is
    std::string_view symbol;
};

// Each table is sorted by increasing factor; the first entry is the fallback
// for values smaller than every factor.
constexpr std::array kByteScales{Scale{1, " B"}, Scale{0x1p10, " KiB"}, Scale{0x1p20, " MiB"},
                                 Scale{0x1p30, " GiB"}, Scale{0x1p40, " TiB"}};
// Go's time.Duration style: no space between number and symbol.
constexpr std::array kTimeScales{Scale{1e-9, "ns"}, Scale{1e-6, "µs"}, Scale{1e-3, "ms"},
                                 Scale{1, "s"}};
constexpr std::array kSiScales{Scale{1e3, "k"}, Scale{1e6, "M"}, Scale{1e9, "G"}};

[[nodiscard]] bool is_time(std::string_view unit) noexcept {
    return unit == "seconds" || unit == "cpu-seconds";
}

// Three significant digits, but never fewer than the integer digits (no
// exponent notation), with trailing zeros dropped.
[[nodiscard]] std::string significant(double x) {
    if (x == 0) return "0";  // also keeps -0 from printing as "-0"
    const int magnitude = static_cast<int>(std::floor(std::log10(std::fabs(x))));
    std::string s = fmt::format("{:.{}f}", x, std::max(0, 2 - magnitude));
    if (s.find('.') != std::string::npos) {
        s.erase(s.find_last_not_of('0') + 1);
        if (s.back() == '.') s.pop_back();
    }
    return s;
}

// The largest scale not above |v|, so the number printed is at least 1. As
// with `ls -h`, a value just below the next scale may round up to "1024 KiB".
template <size_t N>
[[nodiscard]] const Scale& pick(const std::array<Scale, N>& scales, double v) noexcept {
    const Scale* chosen = &scales.front();
    for (const Scale& s : scales)
        if (std::fabs(v) >= s.factor) chosen = &s;
    return *chosen;
}

template <size_t N>
[[nodiscard]] std::string scaled(double v, const std::array<Scale, N>& scales) {
    const Scale& s = pick(scales, v);
    return fmt::format("{}{}", significant(v / s.factor), s.symbol);
}

[[nodiscard]] std::string plain(double v) {
    // Counts below 10,000 read best whole: "9999" rather than "10k".
    if (std::fabs(v) < 1e4) return significant(v);
    return scaled(v, kSiScales);
}

}  // namespace

std::string_view unit_of(std::string_view metric_name) noexcept {
    const size_t colon = metric_name.rfind(':');
    return colon == std::string_view::npos ? std::string_view{} : metric_name.substr(colon + 1);
}

std::string human(double v, std::string_view unit) {
    if (!std::isfinite(v)) return fmt::format("{}", v);  // no scale fits NaN or infinity
    if (unit == "bytes") return scaled(v, kByteScales);
    if (is_time(unit)) return v == 0 ? "0s" : scaled(v, kTimeScales);  // as Go's Duration, not "0ns"
    return plain(v);
}

std::string human_rate(double per_second, std::string_view unit) {
    if (unit == "bytes" || is_time(unit) || unit.empty()) return human(per_second, unit) + "/s";
    return fmt::format("{} {}/s", human(per_second, unit), unit);
}

double uptime_seconds(uint64_t start_time_ns) {
    const uint64_t now = sys::clock_ns(CLOCK_REALTIME);
    return now > start_time_ns ? double(now - start_time_ns) / double(sys::kNsPerSec) : 0;
}

std::string human_uptime(double seconds) {
    const auto s = static_cast<uint64_t>(seconds);
    if (s < 60) return fmt::format("{}s", s);
    if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
    if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, s / 60 % 60);
    return fmt::format("{}d{:02}h", s / 86400, s / 3600 % 24);
}

}  // namespace gometrics::cli
