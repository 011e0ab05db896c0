// gometrics-cli: read the runtime metrics of instrumented processes.
#include <fmt/format.h>

#include "commands.h"
#include "common.h"

int main(int argc, char** argv) {
    using namespace gometrics::cli;
    CLI::App app{"gometrics-cli: Go-style runtime metrics of native processes run with LD_PRELOAD=libgometrics.so",
                 "gometrics-cli"};
    app.require_subcommand(1);
    int status = kExitOk;
    add_ps_commands(app, status);
    add_metric_commands(app, status);
    add_serve_command(app, status);
    add_watch_command(app, status);
    add_exec_command(app, status);
    add_report_commands(app, status);
    add_profile_commands(app, status);
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        fmt::print(stderr, "gometrics-cli: {}\n", e.what());
        return kExitUsage;
    } catch (const Failure& f) {
        fmt::print(stderr, "gometrics-cli: {}\n", f.what());
        return f.status;
    } catch (const std::exception& e) {
        fmt::print(stderr, "gometrics-cli: {}\n", e.what());
        return kExitError;
    }
    return status;
}
