// The agent's only voice: one-line messages on stderr, written with write(2)
// from a stack buffer, so they work on error paths, in forked children and
// before anything is initialised. Never allocates.
#pragma once

#include <atomic>
#include <initializer_list>
#include <string_view>

namespace gometrics::agent::log {

// "gometrics: " + the parts + "\n", as one write(2).
void line(std::initializer_list<std::string_view> parts) noexcept;

// Same, at most once per `flag` for the life of the process.
inline void once(std::atomic<bool>& flag, std::initializer_list<std::string_view> parts) noexcept {
    if (!flag.exchange(true, std::memory_order_relaxed)) line(parts);
}

[[noreturn]] void fatal(std::string_view what) noexcept;

// Decimal rendering into a caller buffer, for messages.
std::string_view dec(long long v, char (&buf)[24]) noexcept;

}  // namespace gometrics::agent::log
