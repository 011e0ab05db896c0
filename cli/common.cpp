// Shared pieces of the CLI commands; see common.h.
#include "common.h"

#include <fmt/format.h>

namespace gometrics::cli {

int pick_pid(std::optional<int> pid) {
    if (pid) return *pid;
    std::vector<ProcessInfo> live;
    for (auto& p : list_processes())
        if (p.alive && p.readable) live.push_back(p);
    if (live.size() == 1) return live[0].pid;
    if (live.empty()) throw Failure(kExitError, "no live instrumented process of this user (run a program with LD_PRELOAD=libgometrics.so)");
    std::string names;
    for (auto& p : live) names += fmt::format("{}{} ({})", names.empty() ? "" : ", ", p.pid, p.command);
    throw Failure(kExitError, fmt::format("{} instrumented processes, choose one with --pid: {}", live.size(), names));
}

Reader open_or_fail(int pid) {
    auto r = Reader::open(pid);
    if (!r) throw Failure(kExitError, r.error().message);
    return std::move(*r);
}

std::string format_scalar(const Value& v) {
    switch (v.kind) {
        case ValueKind::Uint64: return fmt::format("{}", v.u64);
        case ValueKind::Float64: return fmt::format("{}", v.f64);
        default: return "unsupported";
    }
}

}  // namespace gometrics::cli
