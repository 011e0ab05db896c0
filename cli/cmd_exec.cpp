// `exec`: run a command with the agent preloaded (children and exec'd
// programs included), then summarise, report and check what it did.
//
// How the processes of CMD are found and read:
// - every process of the tree inherits LD_PRELOAD and GOMETRICS_REPORT=
//   <tmpdir>/report.%p.json, so each writes its own exit report;
// - exec is a child subreaper, so orphans stay in the tree and are reaped here;
// - an inotify watch on /dev/shm sees each segment as it is created, and the
//   process is kept when its parent chain leads here;
// - every 100 ms the live ones are read fresh (the reader asks for a new
//   snapshot), so a process killed by a signal, which writes no exit report,
//   still has what was known: its segment's last snapshot (read, then
//   removed), or failing that the last poll.
// Profiles (--profile KIND=FILE) come from the agent's own exit path: every
// process writes GOMETRICS_PROFILE_REPORT=<tmpdir>/profile.%p.json, and FILE
// is converted from CMD's (or, with %p in FILE, from each process's).
//
// The parts: exec_agent (finding the agent), exec_tree (following the
// process tree), aggregate (combining its processes), exec_run (running
// CMD), exec_profiles and exec_summary; this file ties them together.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>

#include <fmt/format.h>

#include "aggregate.h"
#include "commands.h"
#include "common.h"
#include "emitter.h"
#include "exec_agent.h"
#include "exec_profiles.h"
#include "exec_run.h"
#include "exec_summary.h"
#include "exec_tree.h"
#include "report_file.h"

namespace gometrics::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

struct Options {
    std::string report;
    std::vector<std::string> checks;
    std::vector<std::string> profiles;  // KIND=FILE, as given
    bool quiet = false;
    std::vector<std::string> command;
};

// The report, whole or not at all: a regular file (or one a symbolic link
// leads to) is written beside itself under a fresh name and renamed over,
// so a reader never sees half of it. Anything else (/dev/stdout, a FIFO, a
// link to a file yet to be made) is written in place. Returns why it
// failed, or an empty string.
std::string write_report(const std::string& path, std::string_view text) {
    const auto failed = [&](int e) { return fmt::format("cannot write {}: {}", path, std::strerror(e)); };
    struct stat st;
    const bool exists = ::stat(path.c_str(), &st) == 0;  // through links
    std::error_code ec;
    const fs::path target = exists ? fs::canonical(path, ec) : fs::path(path);
    const bool link = ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
    if (ec || (link && !exists) || (exists && ::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))) {
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (fd < 0) return failed(errno);
        const bool ok = write_all(fd, text);
        const int e = errno;
        ::close(fd);
        return ok ? "" : failed(e);
    }
    std::string tmp = target.string() + ".XXXXXX";
    const int fd = mkstemp(tmp.data());  // a new file: no name anyone planted is followed
    if (fd < 0) return failed(errno);
    const mode_t mask = umask(0);  // read by setting it: exec has no other thread to see it
    umask(mask);
    fchmod(fd, 0666 & ~mask);  // what a plain create would give, not mkstemp's 0600
    const bool ok = write_all(fd, text) && ::fsync(fd) == 0;
    int e = errno;
    ::close(fd);
    if (ok && std::rename(tmp.c_str(), target.c_str()) == 0) return "";
    if (ok) e = errno;
    ::unlink(tmp.c_str());
    return failed(e);
}

int exec_command(const Options& o) {
    const std::vector<Check> checks = parse_checks(o.checks);  // bad expressions: status 2, CMD not run
    const std::vector<ProfileRequest> profiles = parse_profiles(o.profiles);  // the same
    const std::string agent = find_agent();

    std::string tmpl = fs::temp_directory_path() / "gometrics-exec.XXXXXX";
    if (!mkdtemp(tmpl.data())) throw Failure(kExitError, fmt::format("mkdtemp: {}", std::strerror(errno)));
    const std::string dir = tmpl;
    struct Cleanup {
        std::string dir;
        ~Cleanup() {
            std::error_code ec;
            fs::remove_all(dir, ec);
        }
    } cleanup{dir};

    const char* old = getenv("LD_PRELOAD");
    const std::string preload = old && *old ? agent + ":" + old : agent;
    setenv("LD_PRELOAD", preload.c_str(), 1);
    setenv("GOMETRICS_REPORT", (dir + "/report.%p.json").c_str(), 1);
    if (!profiles.empty()) setenv("GOMETRICS_PROFILE_REPORT", (dir + "/profile.%p.json").c_str(), 1);

    Tree tree(dir);
    const Ended ended = run(o.command, tree);
    tree.finish();
    // CMD is done: from here a closed pipe on our output (`| head -1`) is
    // an error to report, not a signal that loses CMD's status.
    signal(SIGPIPE, SIG_IGN);
    rusage ru{};
    getrusage(RUSAGE_CHILDREN, &ru);  // the whole reaped tree: CPU, and the largest resident set

    json doc;
    doc["command"] = o.command;
    doc["pid"] = ended.pid;
    doc["exit_status"] = ended.status;
    doc["signal"] = ended.signal ? json(ended.signal) : json(nullptr);
    doc["cpu_seconds"] = {{"user", double(ru.ru_utime.tv_sec) + double(ru.ru_utime.tv_usec) * 1e-6},
                          {"system", double(ru.ru_stime.tv_sec) + double(ru.ru_stime.tv_usec) * 1e-6}};
    std::vector<const Metrics*> finals;
    for (const auto& [pid, t] : tree.processes())
        if (t.final) finals.push_back(&*t.final);
    const auto agg = aggregate(finals);
    std::vector<Description> descs;
    std::vector<Value> values;
    json live_peak = nullptr;
    for (const auto& [d, v] : agg) {
        descs.push_back(d);
        values.push_back(v);
        if (d.name == kLivePeak && v.kind == ValueKind::Uint64) live_peak = v.u64;
    }
    doc["peak"] = {{std::string(kLivePeak), live_peak}, {std::string(kRssPeak), uint64_t(ru.ru_maxrss) * 1024}};
    doc["metrics"] = metrics_json(descs, values);
    json procs = json::array();
    for (const auto& [pid, t] : tree.processes())
        procs.push_back({{"pid", pid}, {"command", t.command}, {"source", t.source},
                         {"metrics", t.final ? metrics_json(t.final->descs, t.final->values) : json::array()}});
    doc["processes"] = procs;

    const Report report = report_from_json(doc, "exec report");
    const auto results = run_checks(report, checks);
    bool failed = false;
    doc["checks"] = json::array();
    for (size_t i = 0; i < checks.size(); ++i) {
        failed |= !results[i].passed;
        doc["checks"].push_back(
            {{"check", checks[i].text}, {"passed", results[i].passed}, {"message", results[i].message}});
    }
    // The report before anything is printed: output that fails must not
    // cost it. Bytes that are not UTF-8 (in a command's name or arguments)
    // are replaced, as JSON cannot carry them.
    if (!o.report.empty()) {
        const std::string why = write_report(o.report, dump_json(doc));
        if (!why.empty()) {
            eprint("gometrics-cli: {}", why);
            failed = true;
        }
    }
    if (!o.quiet) print_summary(o.command, ended, tree, report, ru);
    print_check_results(results, o.quiet, true);
    const bool profiled = write_profiles(profiles, dir, ended.pid, o.quiet);

    if (ended.status != 0) return ended.status;
    return failed || !profiled ? kExitError : kExitOk;
}

}  // namespace

void add_exec_command(CLI::App& app, int& status) {
    static Options o;
    auto* e = app.add_subcommand("exec", "Run CMD under the agent (children included); summarise, report and check it");
    e->add_option("--report", o.report, "Write the final report (dump's JSON + command, exit status, peaks) here")
        ->transform(kValue);
    // One expression per --check, so that "--" after it ends the options as it does elsewhere.
    e->add_option("--check", o.checks, "A check, e.g. '/gc/heap/objects:objects <= 10' (repeatable)")
        ->allow_extra_args(false);
    e->add_option("--profile", o.profiles,
                  "KIND=FILE: write CMD's heap, allocs or mutex profile (pprof) when it exits; %p in FILE: one per "
                  "process (repeatable)")
        ->allow_extra_args(false);
    e->add_flag("-q,--quiet", o.quiet, "No summary; print only the failed checks");
    // CMD and its arguments are left alone, options or not (`exec -- sh -c 'exit 3'`).
    static std::string program;
    e->add_option("command", program, "CMD [ARGS...]");
    e->prefix_command();
    e->footer("CMD [ARGS...] follows the options, after --.");
    e->callback([e, &status] {
        // CLI11 keeps the "--" that ended the options first among the rest.
        std::vector<std::string> rest = e->remaining();
        if (!rest.empty() && rest.front().starts_with('-') && rest.front() != "--")
            throw Failure(kExitUsage, fmt::format("exec: unknown option {} (or CMD's own: put -- before CMD)", rest.front()));
        if (!rest.empty() && rest.front() == "--") rest.erase(rest.begin());
        if (!program.empty()) o.command.push_back(program);
        o.command.insert(o.command.end(), rest.begin(), rest.end());
        if (o.command.empty()) throw Failure(kExitUsage, "exec: no command given (gometrics-cli exec [OPTIONS] -- CMD [ARGS...])");
        status = exec_command(o);
    });
}

}  // namespace gometrics::cli
