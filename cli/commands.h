// Each gometrics-cli command registers itself on the app; its callback
// returns the exit status through `status`.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace gometrics::cli {

void add_ps_commands(CLI::App& app, int& status);       // ps, gc
void add_metric_commands(CLI::App& app, int& status);   // list, read, dump
void add_serve_command(CLI::App& app, int& status);     // serve
void add_exec_command(CLI::App& app, int& status);      // exec
void add_report_commands(CLI::App& app, int& status);   // check, diff
void add_watch_command(CLI::App& app, int& status);     // watch
void add_profile_commands(CLI::App& app, int& status);  // profile
void add_attach_commands(CLI::App& app, int& status);   // attach, detach

// What options take, checked before CLI11 converts them. kDecimal: an
// integer in decimal ("010" is ten: CLI11 alone reads it as octal, "0x10" as
// hex, and an empty value as none given). kValue: anything but an empty
// string or "--" (which would end the options).
extern const CLI::Validator kDecimal;
extern const CLI::Validator kValue;

// `profile KIND --from-report REPORT -o OUTPUT`, for `exec --profile
// KIND=FILE`: converts the GOMETRICS_PROFILE_REPORT an exited process wrote
// into a symbolized pprof profile (quiet: without the line saying so). KIND
// is heap, allocs or mutex; throws Failure with a one-line message.
void write_profile_from_report(const std::string& kind, const std::string& report, const std::string& output,
                               bool quiet);

}  // namespace gometrics::cli
