// libFuzzer target: the check-expression parser and evaluator of
// gometrics-cli (`exec --check`, `check`). The input is the expression;
// each parsed check is evaluated against a missing value, a uint64, a
// float64 and a histogram whose counts come from the input too.
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string_view>
#include <variant>

#include "check.h"

using gometrics::Value;
using gometrics::ValueKind;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view expr(reinterpret_cast<const char*>(data), size);
    auto parsed = gometrics::cli::parse_check(expr);
    if (const auto* message = std::get_if<std::string>(&parsed)) {
        if (message->empty()) std::abort();  // an error always says what is wrong
        return 0;
    }
    const auto& check = std::get<gometrics::cli::Check>(parsed);
    constexpr double kInf = std::numeric_limits<double>::infinity();
    Value u{.kind = ValueKind::Uint64, .u64 = size * 1000003ULL, .f64 = 0, .hist = {}};
    Value f{.kind = ValueKind::Float64, .u64 = 0, .f64 = size ? data[0] / 7.0 : std::nan(""), .hist = {}};
    Value h{.kind = ValueKind::Float64Histogram, .u64 = 0, .f64 = 0, .hist = {}};
    h.hist.buckets = {-kInf, 0, 1e-6, 1e-3, 1, 1024, kInf};
    for (size_t i = 0; i + 1 < h.hist.buckets.size(); ++i) h.hist.counts.push_back(i < size ? data[i] : 0);
    for (const Value* v : std::array<const Value*, 4>{nullptr, &u, &f, &h}) {
        const auto result = gometrics::cli::evaluate(check, v);
        if (result.message.empty()) std::abort();
    }
    return 0;
}
