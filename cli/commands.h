// Each gometrics-cli command registers itself on the app; its callback
// returns the exit status through `status`.
#pragma once

#include <CLI/CLI.hpp>

namespace gometrics::cli {

void add_ps_commands(CLI::App& app, int& status);       // ps, gc
void add_metric_commands(CLI::App& app, int& status);   // list, read, dump
void add_profile_commands(CLI::App& app, int& status);  // profile

}  // namespace gometrics::cli
