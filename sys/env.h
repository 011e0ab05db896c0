// Environment variables as numbers, checked: no allocation, so the agent
// may read them before its constructor runs.
#pragma once

#include <cstdint>
#include <string_view>

namespace gometrics::sys {

// What a variable holds: nothing (unset or empty), a number in range, or
// something else (the caller says so and keeps its default).
struct EnvNumber {
    enum Status { kUnset, kOk, kInvalid } status;
    uint64_t value;      // kOk
    const char* text;    // kInvalid: the variable's text
};

// A decimal number in [lo, hi] from the text of a variable (null: unset).
EnvNumber parse_env_number(const char* text, uint64_t lo, uint64_t hi) noexcept;
// The same for variable `name` of this process's environment.
EnvNumber env_number(const char* name, uint64_t lo, uint64_t hi) noexcept;

}  // namespace gometrics::sys
