// Check expressions ("/gc/pauses:seconds:p99 < 5ms") for `gometrics-cli exec
// --check EXPR` and `gometrics-cli check FILE EXPR...`: parsing and evaluation.
#include "check.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>

#include <fmt/format.h>

#include "histstats.h"
#include "units.h"

namespace gometrics::cli {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr std::string_view kSpaces = " \t\n\r\f\v";
constexpr std::string_view kOperatorChars = "<>=!";

// What a value suffix says about the quantity, beyond scaling it.
enum class Dimension : uint8_t { None, Bytes, Time };

struct Suffix {
    std::string_view text;
    double factor;
    Dimension dimension;
};

constexpr std::array kSuffixes{
    // Multipliers carry no dimension, so they fit any unit.
    Suffix{"k", 1e3, Dimension::None},
    Suffix{"M", 1e6, Dimension::None},
    Suffix{"G", 1e9, Dimension::None},
    Suffix{"T", 1e12, Dimension::None},
    Suffix{"Ki", 0x1p10, Dimension::None},
    Suffix{"Mi", 0x1p20, Dimension::None},
    Suffix{"Gi", 0x1p30, Dimension::None},
    Suffix{"Ti", 0x1p40, Dimension::None},
    Suffix{"B", 1, Dimension::Bytes},
    Suffix{"KiB", 0x1p10, Dimension::Bytes},
    Suffix{"MiB", 0x1p20, Dimension::Bytes},
    Suffix{"GiB", 0x1p30, Dimension::Bytes},
    Suffix{"TiB", 0x1p40, Dimension::Bytes},
    Suffix{"ns", 1e-9, Dimension::Time},
    Suffix{"us", 1e-6, Dimension::Time},
    Suffix{"\u00b5s", 1e-6, Dimension::Time},  // micro sign
    Suffix{"\u03bcs", 1e-6, Dimension::Time},  // Greek mu: looks the same, so accepted too
    Suffix{"ms", 1e-3, Dimension::Time},
    Suffix{"s", 1, Dimension::Time},
    Suffix{"m", 60, Dimension::Time},
    Suffix{"h", 3600, Dimension::Time},
};

struct OpSpelling {
    std::string_view text;
    Op op;
};

// Two-character spellings first, so "<=" is not read as "<" then "=...".
constexpr std::array kOps{OpSpelling{"<=", Op::LessEqual}, OpSpelling{">=", Op::GreaterEqual},
                          OpSpelling{"==", Op::Equal},     OpSpelling{"!=", Op::NotEqual},
                          OpSpelling{"<", Op::Less},       OpSpelling{">", Op::Greater}};

[[nodiscard]] std::string_view trim(std::string_view s) noexcept {
    const size_t first = s.find_first_not_of(kSpaces);
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(kSpaces) - first + 1);
}

[[nodiscard]] bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// Parses all of s as a double; nullopt if any of it is left over.
[[nodiscard]] std::optional<double> to_double(std::string_view s) noexcept {
    double v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
    return v;
}

// "p99.9" -> 0.999; nullopt unless selector is 'p', then a number from 0 to 100
// made of digits and a '.' between them (from_chars alone would also take
// exponents: "p1e2").
[[nodiscard]] std::optional<double> quantile_of(std::string_view selector) noexcept {
    if (selector.size() < 2 || selector.front() != 'p') return std::nullopt;
    const std::string_view number = selector.substr(1);
    if (number.find_first_not_of("0123456789.") != std::string_view::npos || !is_digit(number.front()) ||
        !is_digit(number.back()))
        return std::nullopt;
    const std::optional<double> percent = to_double(number);
    if (!percent || *percent > 100) return std::nullopt;
    return *percent / 100;
}

[[nodiscard]] bool valid_selector(std::string_view selector) noexcept {
    return selector == "count" || selector == "max" || quantile_of(selector).has_value();
}

// The unit the compared value is in: a sample count has none.
[[nodiscard]] std::string_view value_unit(std::string_view name, std::string_view selector) noexcept {
    return selector == "count" ? std::string_view{} : unit_of(name);
}

[[nodiscard]] bool fits(Dimension dimension, std::string_view unit) noexcept {
    switch (dimension) {
        case Dimension::None: return true;
        case Dimension::Bytes: return unit == "bytes";
        case Dimension::Time: return unit == "seconds" || unit == "cpu-seconds";
    }
    return false;
}

// The helpers below fill in part of a Check and return what is wrong with
// their part of the expression, or an empty string when it is fine.

// lhs is "NAME[:SELECTOR]", trimmed.
[[nodiscard]] std::string parse_name(std::string_view lhs, Check& check) {
    if (lhs.empty()) return "missing metric name before the operator";
    if (lhs.find_first_of(kSpaces) != std::string_view::npos)
        return fmt::format("'{}' has a space in it; a metric name has none", lhs);
    if (lhs.front() != '/') return fmt::format("metric name '{}' does not start with '/'", lhs);
    const size_t colon = lhs.find(':');
    if (colon == std::string_view::npos)
        return fmt::format("metric name '{}' has no ':unit', as in /gc/heap/allocs:bytes", lhs);
    if (colon == 1) return fmt::format("metric name '{}' has an empty path", lhs);

    const size_t selector_colon = lhs.find(':', colon + 1);
    const std::string_view name = lhs.substr(0, selector_colon);
    if (name.size() == colon + 1) return fmt::format("metric name '{}' has an empty unit", name);
    check.name = name;
    if (selector_colon == std::string_view::npos) return {};

    const std::string_view selector = lhs.substr(selector_colon + 1);
    if (selector.empty()) return fmt::format("'{}' has no selector after its last ':'", lhs);
    if (!valid_selector(selector))
        return fmt::format("unknown selector '{}' (expected pNN[.N] up to p100, count or max)", selector);
    check.selector = selector;
    return {};
}

// s starts at the operator; on success rest is what follows it, trimmed.
[[nodiscard]] std::string parse_op(std::string_view s, Check& check, std::string_view& rest) {
    for (const OpSpelling& spelling : kOps) {
        if (!s.starts_with(spelling.text)) continue;
        check.op = spelling.op;
        rest = trim(s.substr(spelling.text.size()));
        if (rest.empty()) return fmt::format("missing value after '{}'", spelling.text);
        return {};
    }
    return fmt::format("'{}' is not an operator (expected one of < <= == != >= >)", s.front());
}

// s is "VALUE", trimmed and not empty; check.name and check.selector are already set.
[[nodiscard]] std::string parse_value(std::string_view s, Check& check) {
    // from_chars takes no '+' and would take "inf" and "nan": handle the sign
    // here and require a digit or '.' after it.
    const bool negative = s.front() == '-';
    const std::string_view unsigned_part = (negative || s.front() == '+') ? s.substr(1) : s;
    if (unsigned_part.empty() || !(is_digit(unsigned_part.front()) || unsigned_part.front() == '.'))
        return fmt::format("'{}' is not a number", s);
    double number = 0;
    const char* end = unsigned_part.data() + unsigned_part.size();
    const auto [suffix_start, ec] = std::from_chars(unsigned_part.data(), end, number);
    if (ec == std::errc::result_out_of_range) return fmt::format("'{}' is out of range", s);
    if (ec != std::errc{}) return fmt::format("'{}' is not a number", s);

    const std::string_view suffix = trim({suffix_start, end});
    double factor = 1;
    if (!suffix.empty()) {
        const auto* found = std::find_if(kSuffixes.begin(), kSuffixes.end(),
                                         [&](const Suffix& x) { return x.text == suffix; });
        if (found == kSuffixes.end() && (is_digit(suffix.front()) || suffix.front() == '.'))
            return fmt::format("'{}' is not a number", s);  // "1.2.3", "5 6"
        if (found == kSuffixes.end())
            return fmt::format("unknown suffix '{}' (expected k M G T, Ki Mi Gi Ti, B KiB MiB GiB TiB, "
                               "ns us µs ms s m h)", suffix);
        if (!fits(found->dimension, value_unit(check.name, check.selector))) {
            const std::string_view needed = found->dimension == Dimension::Bytes ? "bytes" : "seconds";
            return fmt::format("suffix '{}' only applies to {} metrics", suffix, needed);
        }
        factor = found->factor;
    }
    check.value = (negative ? -number : number) * factor;
    if (!std::isfinite(check.value)) return fmt::format("'{}' is out of range", s);
    return {};
}

// text is the whole expression, trimmed.
[[nodiscard]] std::string parse_parts(std::string_view text, Check& check) {
    if (text.empty()) return "empty expression";
    // Metric names never hold operator characters, so the first one starts OP.
    const size_t op_at = text.find_first_of(kOperatorChars);
    if (op_at == std::string_view::npos) return "no comparison operator (expected one of < <= == != >= >)";
    if (std::string what = parse_name(trim(text.substr(0, op_at)), check); !what.empty()) return what;
    std::string_view value;
    if (std::string what = parse_op(text.substr(op_at), check, value); !what.empty()) return what;
    return parse_value(value, check);
}

using Measured = std::variant<double, std::string>;  // the number to compare, or why there is none

[[nodiscard]] Measured measure_scalar(const Check& check, double v) {
    if (!check.selector.empty())
        return fmt::format("selector ':{}' needs a histogram, and {} is not one", check.selector, check.name);
    return v;
}

[[nodiscard]] Measured measure_histogram(const Check& check, const Float64Histogram& h) {
    if (check.selector.empty())
        return fmt::format("{} is a histogram: add a selector such as :p99, :count or :max", check.name);
    if (check.selector == "count") return static_cast<double>(total_count(h));
    if (total_count(h) == 0) return fmt::format("{} has no samples", check.name);
    const double found = check.selector == "max" ? max_bound(h)
                                                 : quantile(h, quantile_of(check.selector).value_or(kNaN));
    // Left: a malformed histogram, or all samples in one (-Inf, +Inf) bucket.
    if (std::isnan(found)) return fmt::format("{}:{} is undefined for this histogram", check.name, check.selector);
    return found;
}

[[nodiscard]] Measured measure(const Check& check, const Value& v) {
    switch (v.kind) {
        case ValueKind::Uint64: return measure_scalar(check, static_cast<double>(v.u64));
        case ValueKind::Float64: return measure_scalar(check, v.f64);
        case ValueKind::Float64Histogram: return measure_histogram(check, v.hist);
        case ValueKind::Bad: break;
    }
    return fmt::format("{} has an unsupported kind", check.name);  // Bad, or a kind this build does not know
}

[[nodiscard]] bool compare(double found, Op op, double value) noexcept {
    switch (op) {
        case Op::Less: return found < value;
        case Op::LessEqual: return found <= value;
        case Op::Equal: return found == value;
        case Op::NotEqual: return found != value;
        case Op::GreaterEqual: return found >= value;
        case Op::Greater: return found > value;
    }
    return false;
}

}  // namespace

std::variant<Check, std::string> parse_check(std::string_view expr) {
    const std::string_view text = trim(expr);
    Check check;
    check.text = text;
    if (std::string what = parse_parts(text, check); !what.empty())
        return fmt::format("invalid check \"{}\": {}", text, what);
    return check;
}

CheckResult evaluate(const Check& check, const Value* v) {
    const Measured measured = v != nullptr ? measure(check, *v) : Measured{fmt::format("{} is not present", check.name)};
    if (const auto* reason = std::get_if<std::string>(&measured))
        return {.passed = false, .found = kNaN, .message = fmt::format("check failed: {} ({})", check.text, *reason)};

    const double found = std::get<double>(measured);
    const bool passed = compare(found, check.op, check.value);
    return {.passed = passed,
            .found = found,
            .message = fmt::format("check {}: {} (found {})", passed ? "passed" : "failed", check.text,
                                   human(found, value_unit(check.name, check.selector)))};
}

}  // namespace gometrics::cli
