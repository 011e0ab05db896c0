// Environment numbers; see env.h.
#include "env.h"

#include <cstdlib>

#include "text.h"

namespace gometrics::sys {

EnvNumber parse_env_number(const char* text, uint64_t lo, uint64_t hi) noexcept {
    if (!text || !*text) return {EnvNumber::kUnset, 0, nullptr};
    const auto v = text::parse_u64(text);
    if (!v || *v < lo || *v > hi) return {EnvNumber::kInvalid, 0, text};
    return {EnvNumber::kOk, *v, nullptr};
}

EnvNumber env_number(const char* name, uint64_t lo, uint64_t hi) noexcept {
    return parse_env_number(getenv(name), lo, hi);
}

}  // namespace gometrics::sys
