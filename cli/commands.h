// Each gometrics-cli command registers itself on the app; its callback
// returns the exit status through `status`.
#pragma once

#include <CLI/CLI.hpp>

namespace gometrics::cli {

void add_ps_commands(CLI::App& app, int& status);       // ps, gc
void add_metric_commands(CLI::App& app, int& status);   // list, read, dump
void add_serve_command(CLI::App& app, int& status);     // serve
void add_exec_command(CLI::App& app, int& status);      // exec
void add_report_commands(CLI::App& app, int& status);   // check, diff
void add_watch_command(CLI::App& app, int& status);     // watch

}  // namespace gometrics::cli
