// What every gometrics-cli command shares: picking the process, failing with
// one clear line and a documented exit status.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "reader.h"

namespace gometrics::cli {

// Exit statuses of gometrics-cli.
enum Exit : int {
    kExitOk = 0,
    kExitError = 1,       // no such process, not instrumented, corrupt segment, I/O
    kExitUsage = 2,       // bad arguments or expressions
    kExitUnsupported = 3  // `read` of a name the process does not publish
};

// Thrown by commands to end with a one-line message on stderr; main() prints
// "gometrics-cli: <message>" and exits with `status`.
struct Failure : std::runtime_error {
    int status;
    Failure(int s, const std::string& message) : std::runtime_error(message), status(s) {}
};

// Writes all of text to fd (through EINTR and short writes); false, with
// errno, when it cannot.
bool write_all(int fd, std::string_view text) noexcept;

// Writes text to stderr as it is, never failing: a closed or full stderr
// must not turn a message into a crash (fmt::print throws there).
void write_stderr(std::string_view text) noexcept;

// A line on stderr (the newline added).
template <typename... T>
void eprint(fmt::format_string<T...> format, T&&... args) noexcept {
    try {
        write_stderr(fmt::format(format, std::forward<T>(args)...) + "\n");
    } catch (...) {  // no memory for the line: nothing to say it with
    }
}

// Whether everything printed to stdout reached it; says why not.
bool stdout_complete() noexcept;

// A name another process chose (its command), with the control bytes that
// would drive a terminal (C0 and C1 controls, bidirectional overrides), and
// bytes that are not UTF-8, shown as '?'.
std::string printable(std::string_view text);

// The pid given, or the only live instrumented process of this user.
int pick_pid(std::optional<int> pid);

// Opens the segment of pid or fails with the reader's message.
Reader open_or_fail(int pid);

// Formats a scalar value for people: integers as integers, floats shortest.
std::string format_scalar(const Value& v);

}  // namespace gometrics::cli
