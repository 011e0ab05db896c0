// What every gometrics-cli command shares: picking the process, failing with
// one clear line and a documented exit status.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

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

// The pid given, or the only live instrumented process of this user.
int pick_pid(std::optional<int> pid);

// Opens the segment of pid or fails with the reader's message.
Reader open_or_fail(int pid);

// Formats a scalar value for people: integers as integers, floats shortest.
std::string format_scalar(const Value& v);

}  // namespace gometrics::cli
