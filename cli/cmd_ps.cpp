// `ps` (the live instrumented processes of this user) and `gc` (remove the
// segments of processes that are gone).
#include <time.h>

#include <fmt/format.h>

#include "commands.h"
#include "common.h"

namespace gometrics::cli {

namespace {

std::string uptime(uint64_t start_ns) {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const uint64_t now = uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
    const uint64_t s = now > start_ns ? (now - start_ns) / 1000000000ULL : 0;
    if (s < 60) return fmt::format("{}s", s);
    if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
    if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, s / 60 % 60);
    return fmt::format("{}d{:02}h", s / 86400, s / 3600 % 24);
}

}  // namespace

void add_ps_commands(CLI::App& app, int& status) {
    auto* ps = app.add_subcommand("ps", "List live instrumented processes of this user (segments of dead ones are skipped)");
    ps->callback([&status] {
        fmt::print("{:>8}  {:>8}  {}\n", "PID", "UPTIME", "COMMAND");
        for (const auto& p : list_processes())
            if (p.alive && p.readable) fmt::print("{:>8}  {:>8}  {}\n", p.pid, uptime(p.start_time_ns), p.command);
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
