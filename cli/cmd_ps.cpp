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
        for (const auto& p : list_processes()) {
            if (p.alive && p.readable)
                fmt::print("{:>8}  {:>8}  {}\n", p.pid, human_uptime(uptime_seconds(p.start_time_ns)), printable(p.command));
            else if (p.alive && !p.problem.empty())  // a live process of ours that no reader can see: say so
                eprint("gometrics-cli: pid {} ({}) left out: {}", p.pid, printable(p.command), printable(p.problem));
        }
        status = kExitOk;
    });

    auto* gc = app.add_subcommand("gc", "Remove segments left in /dev/shm by processes that are gone");
    gc->callback([&status] {
        const StaleRemoval r = remove_stale_segments();
        fmt::print("removed {} stale segment{}\n", r.removed, r.removed == 1 ? "" : "s");
        if (r.others)
            fmt::print("left {} stale segment{} of other users (only their owner or root may remove {})\n", r.others,
                       r.others == 1 ? "" : "s", r.others == 1 ? "it" : "them");
        for (const std::string& e : r.errors) eprint("gometrics-cli: cannot remove {}", e);
        status = r.errors.empty() ? kExitOk : kExitError;
    });
}

}  // namespace gometrics::cli
