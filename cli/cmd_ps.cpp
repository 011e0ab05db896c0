// `ps` (the live instrumented processes of this user) and `gc` (remove the
// segments of processes that are gone).
#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "units.h"

namespace gometrics::cli {

void add_ps_commands(CLI::App& app, int& status) {
    auto* ps = app.add_subcommand("ps", "List live instrumented processes of this user (segments of dead ones are skipped)");
    ps->callback([&status] {
        fmt::print("{:>8}  {:>8}  {}\n", "PID", "UPTIME", "COMMAND");
        for (const auto& p : list_processes())
            if (p.alive && p.readable) fmt::print("{:>8}  {:>8}  {}\n", p.pid, human_uptime(uptime_seconds(p.start_time_ns)), p.command);
        status = kExitOk;
    });

    auto* gc = app.add_subcommand("gc", "Remove segments left in /dev/shm by processes that are gone");
    gc->callback([&status] {
        auto removed = remove_stale_segments();
        if (!removed) throw Failure(kExitError, removed.error().message);
        fmt::print("removed {} stale segment{}\n", *removed, *removed == 1 ? "" : "s");
        status = kExitOk;
    });
}

}  // namespace gometrics::cli
