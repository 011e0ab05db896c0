// gometrics-cli: read the runtime metrics of instrumented processes.
#include <cstdio>
#include <cstring>
#include <string_view>
#include <system_error>

#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "shrink_guard.h"

int main(int argc, char** argv) {
    using namespace gometrics::cli;
    CLI::App app{"gometrics-cli: Go-style runtime metrics of native processes run with LD_PRELOAD=libgometrics.so",
                 "gometrics-cli"};
    app.require_subcommand(1);
    // A segment, or a file a profile's symbols come from, truncated while
    // mapped here reads as zeros instead of killing the command (the reader
    // then says the segment shrank).
    gometrics::sys::install_shrink_guard();
    int status = kExitOk;
    // Registering every command's options (CLI11 builds objects for each)
    // would cost a `read` more than its own work: when the first argument
    // names a command, only its group is registered (--help and mistakes
    // still see them all).
    struct Group {
        std::string_view names[3];
        void (*add)(CLI::App&, int&);
    };
    static constexpr Group kGroups[] = {
        {{"ps", "gc"}, add_ps_commands},         {{"list", "read", "dump"}, add_metric_commands},
        {{"serve"}, add_serve_command},          {{"watch"}, add_watch_command},
        {{"exec"}, add_exec_command},            {{"check", "diff"}, add_report_commands},
        {{"profile"}, add_profile_commands},     {{"attach", "detach"}, add_attach_commands},
    };
    const std::string_view first = argc > 1 ? argv[1] : "";
    const Group* only = nullptr;
    for (const Group& g : kGroups)
        for (std::string_view n : g.names)
            if (!n.empty() && n == first) only = &g;
    for (const Group& g : kGroups)
        if (!only || only == &g) g.add(app, status);
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        eprint("gometrics-cli: {}", e.what());
        return kExitUsage;
    } catch (const Failure& f) {
        eprint("gometrics-cli: {}", f.what());
        return f.status;
    } catch (const std::system_error& e) {
        // fmt::print throws when stdout refuses a full buffer (a full disk):
        // said as stdout_complete says it once the command is done.
        if (std::ferror(stdout))
            eprint("gometrics-cli: cannot write the output: {}", std::strerror(e.code().value()));
        else
            eprint("gometrics-cli: {}", e.what());
        return kExitError;
    } catch (const std::exception& e) {
        eprint("gometrics-cli: {}", e.what());
        return kExitError;
    }
    // Output that never reached stdout (a full disk, a closed descriptor) is
    // a failed command, unless it failed already (exec passes CMD's status).
    if (!stdout_complete() && status == kExitOk) return kExitError;
    return status;
}
