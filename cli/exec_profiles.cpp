// Profiles for `exec`; see exec_profiles.h.
#include "exec_profiles.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "profile_build.h"
#include "commands.h"
#include "common.h"

namespace gometrics::cli {

namespace fs = std::filesystem;

std::vector<ProfileRequest> parse_profiles(const std::vector<std::string>& given) {
    std::vector<ProfileRequest> out;
    for (const std::string& g : given) {
        const size_t eq = g.find('=');
        const std::string kind = g.substr(0, eq);
        if (eq == std::string::npos || eq + 1 == g.size() || !parse_profile_kind(kind))
            throw Failure(kExitUsage,
                          fmt::format("exec: --profile \"{}\": expected KIND=FILE, KIND heap, allocs or mutex", g));
        out.push_back({kind, g.substr(eq + 1)});
    }
    return out;
}

namespace {

std::string with_pid(std::string file, int pid) {
    for (size_t at; (at = file.find("%p")) != std::string::npos;) file.replace(at, 2, std::to_string(pid));
    return file;
}

}  // namespace

bool write_profiles(const std::vector<ProfileRequest>& requests, const std::string& dir, int cmd_pid, bool quiet) {
    std::vector<int> reporters;  // processes that wrote a profile report, in pid order
    for (const auto& e : fs::directory_iterator(dir)) {
        int pid = 0;
        if (std::sscanf(e.path().filename().c_str(), "profile.%d.json", &pid) == 1) reporters.push_back(pid);
    }
    std::sort(reporters.begin(), reporters.end());
    const auto report_of = [&](int pid) { return fmt::format("{}/profile.{}.json", dir, pid); };
    bool ok = true;
    const auto convert = [&](const ProfileRequest& r, int pid, const std::string& file) {
        try {
            write_profile_from_report(r.kind, report_of(pid), file, quiet);
        } catch (const Failure& f) {
            eprint("gometrics-cli: no {} profile in {}: {}", r.kind, file, f.what());
            ok = false;
        }
    };
    for (const ProfileRequest& r : requests) {
        if (r.file.find("%p") != std::string::npos) {
            if (reporters.empty()) {
                eprint("gometrics-cli: no {} profile: no process wrote a profile report (killed by a "
                       "signal, or ended with _exit)", r.kind);
                ok = false;
            }
            for (int pid : reporters) convert(r, pid, with_pid(r.file, pid));
        } else if (std::find(reporters.begin(), reporters.end(), cmd_pid) == reporters.end()) {
            eprint("gometrics-cli: no {} profile in {}: CMD (process {}) wrote no profile report (killed "
                   "by a signal, or ended with _exit){}", r.kind, r.file, cmd_pid,
                   reporters.empty() ? "" : "; put %p in FILE for its children's");
            ok = false;
        } else {
            convert(r, cmd_pid, r.file);
        }
    }
    return ok;
}

}  // namespace gometrics::cli
