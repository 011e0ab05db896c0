// serve and profile need cpp-httplib (with OpenSSL and brotli), zlib and
// libdw; no other command needs any of them. They live in modules that the
// CLI loads only when one of them runs, so that `read`, `list` or `ps` do not
// pay at start-up for loading and relocating those libraries. The CLI parses
// the options (so --help needs no module) and hands them over here.
#pragma once

#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "common.h"
#include "prometheus.h"

namespace gometrics::cli {

// `profile`, and `exec --profile` through write_profile_from_report.
struct ProfileArgs {
    std::string kind;
    std::optional<int> pid;
    std::string output;  // "" default name, "-" stdout
    std::string format = "pprof";
    std::string from_report;
    bool symbolize = true;
    std::size_t top = 10;
    bool quiet = false;  // no line saying where the profile went
};

struct ServeArgs {
    std::string listen = "127.0.0.1:9464";
    std::string ns{prom::kDefaultNamespace};
    std::vector<int> pids;
    int fresh_timeout_ms = 50;
    int write_timeout_s = 60;
    bool otlp = false;
    std::string otlp_url;  // empty: from the environment
    std::optional<int> otlp_interval_s;
};

// The modules' file names, in the CLI's module directory (load_module).
inline constexpr const char* kProfileModule = "libgometrics-cli-profile.so";
inline constexpr const char* kServeModule = "libgometrics-cli-serve.so";

// A command's failure in a module, handed back rather than thrown: the CLI
// carries its own C++ runtime (linked in) and the modules use the shared one,
// so an exception must not cross between them.
struct ModuleFailure {
    int status = 0;  // 0: none
    std::string message;
};

// In a module: runs a command, turning what it throws into `failure`.
template <class Command>
int run_in_module(ModuleFailure& failure, Command&& command) noexcept {
    try {
        return command();
    } catch (const Failure& f) {
        failure = {f.status, f.what()};
    } catch (const std::exception& e) {
        failure = {kExitError, e.what()};
    } catch (...) {
        failure = {kExitError, "unknown error"};
    }
    return failure.status;
}

// The symbol `name` of `module`, loaded on first use: from
// <bindir>/../<libdir>/gometrics/ next to the installed CLI, else from the
// CLI's own directory (the build tree). Throws Failure with one line when the
// module is missing, cannot load (a library it needs is not installed), or
// comes from another version of the CLI.
void* load_module_symbol(const char* module, const char* name);

// In the CLI: calls a module's entry point, throwing what it handed back.
template <class Args>
int call_module(const char* module, const char* name, const Args& args) {
    using Run = int(const Args&, ModuleFailure&);
    ModuleFailure failure;
    const int status = reinterpret_cast<Run*>(load_module_symbol(module, name))(args, failure);
    if (failure.status) throw Failure(failure.status, failure.message);
    return status;
}

}  // namespace gometrics::cli

// The entry points, C names for dlsym. A failure comes back in `failure`.
extern "C" {
// Every module defines it as the CLI's version; a module of another version
// is refused, since the argument structs above may differ.
extern const char gometrics_cli_module_version[];
int gometrics_cli_profile_run(const gometrics::cli::ProfileArgs& args, gometrics::cli::ModuleFailure& failure);
int gometrics_cli_serve_run(const gometrics::cli::ServeArgs& args, gometrics::cli::ModuleFailure& failure);
}
