// Check expressions ("/gc/pauses:seconds:p99 < 5ms") for `gometrics-cli exec
// --check EXPR` and `gometrics-cli check FILE EXPR...`: parsing and evaluation.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "metrics.h"

namespace gometrics::cli {

enum class Op : uint8_t { Less, LessEqual, Equal, NotEqual, GreaterEqual, Greater };

// A parsed `NAME[:SELECTOR] OP VALUE`, spaces around OP optional:
//   NAME      a Go metric name, "/path:unit".
//   SELECTOR  histograms only: pNN[.N] (percentile, 0 to 100), count (total
//             samples) or max (upper edge of the highest non-empty bucket).
//   OP        < <= == != >= >
//   VALUE     a decimal number (optional sign and exponent), then optionally,
//             after optional spaces, a suffix:
//               k M G T                 x1000 steps, any unit
//               Ki Mi Gi Ti             x1024 steps, any unit
//               B KiB MiB GiB TiB       bytes metrics only
//               ns us µs ms s m h       seconds and cpu-seconds metrics only
//                                       (µ may be U+00B5 or U+03BC)
//             :count is a number of samples, so it takes no bytes or time suffix.
struct Check {
    std::string name;      // "/gc/pauses:seconds"
    std::string selector;  // without its ':' ("p99.9", "count", "max"); empty for scalars
    Op op = Op::Less;
    double value = 0;      // suffix applied: in bytes, seconds or plain units
    std::string text;      // the expression as written, trimmed; messages quote it
};

// The Check, or a one-line message quoting the expression and saying what is
// wrong with it.
[[nodiscard]] std::variant<Check, std::string> parse_check(std::string_view expr);

struct CheckResult {
    bool passed = false;
    double found = 0;  // the value compared; NaN when there was none to compare
    // "check passed: EXPR (found V)" or "check failed: EXPR (found V)", V in
    // human units; or "check failed: EXPR (REASON)" when nothing was compared.
    std::string message;
};

// Evaluates check against v, the metric's value (nullptr when the report or
// process does not have the metric). Comparisons are exact IEEE 754 ones,
// == and != included (NaN satisfies only !=): any tolerance would have to be
// guessed per metric, and a range written as two checks states it instead.
// A percentile or max of an empty histogram fails: there is nothing to compare.
[[nodiscard]] CheckResult evaluate(const Check& check, const Value* v);

}  // namespace gometrics::cli
