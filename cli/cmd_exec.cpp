// `exec`: run a command with the agent preloaded (children and exec'd
// programs included), then summarise, report and check what it did.
//
// How the processes of CMD are found and read:
// - every process of the tree inherits LD_PRELOAD and GOMETRICS_REPORT=
//   <tmpdir>/report.%p.json, so each writes its own exit report;
// - exec is a child subreaper, so orphans stay in the tree and are reaped here;
// - an inotify watch on /dev/shm sees each segment as it is created, and the
//   process is kept when its parent chain leads here;
// - every kPollMs the live ones are read fresh (the reader asks for a new
//   snapshot), so a process killed by a signal, which writes no exit report,
//   still has what was known: its segment's last snapshot (read, then
//   removed), or failing that the last poll.
// Profiles (--profile KIND=FILE) come from the agent's own exit path: every
// process writes GOMETRICS_PROFILE_REPORT=<tmpdir>/profile.%p.json, and FILE
// is converted from CMD's (or, with %p in FILE, from each process's).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include <fmt/format.h>

#include "aggregate.h"
#include "cli/profile_build.h"
#include "commands.h"
#include "common.h"
#include "emitter.h"
#include "report_file.h"
#include "units.h"

#ifndef GOMETRICS_LIBDIR
#define GOMETRICS_LIBDIR "lib"
#endif

namespace gometrics::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

constexpr int kPollMs = 100;
constexpr std::string_view kSegmentPrefix = "gometrics.";
constexpr std::string_view kLivePeak = "/gc/heap/live-peak:bytes";
constexpr std::string_view kRssPeak = "/process/memory/rss-peak:bytes";

// One --profile KIND=FILE.
struct ProfileRequest {
    std::string kind;
    std::string file;  // "%p" in it: one file per process of the tree
};

struct Options {
    std::string report;
    std::vector<std::string> checks;
    std::vector<std::string> profiles;  // KIND=FILE, as given
    bool quiet = false;
    std::vector<std::string> command;
};

// --- Finding the agent -------------------------------------------------------

std::string find_agent() {
    if (const char* env = getenv("GOMETRICS_AGENT"); env && *env) {
        if (access(env, R_OK) != 0)
            throw Failure(kExitError, fmt::format("GOMETRICS_AGENT={}: {}", env, std::strerror(errno)));
        return fs::absolute(env).string();
    }
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) throw Failure(kExitError, "cannot find the agent: /proc/self/exe is unreadable; set GOMETRICS_AGENT");
    const fs::path dir = self.parent_path();
    // Installed (prefix/bin next to prefix/<libdir>, multiarch or not), then the build tree.
    const fs::path candidates[] = {dir / ".." / GOMETRICS_LIBDIR / "libgometrics.so",
                                   dir / ".." / "lib" / "libgometrics.so", dir / ".." / "agent" / "libgometrics.so"};
    for (const auto& c : candidates)
        if (access(c.c_str(), R_OK) == 0) return fs::weakly_canonical(c).string();
    throw Failure(kExitError, fmt::format("cannot find libgometrics.so next to {} (looked in ../{}, ../lib, "
                                          "../agent); set GOMETRICS_AGENT",
                                          self.string(), GOMETRICS_LIBDIR));
}

// --- /proc -------------------------------------------------------------------

// A small /proc file, empty if the process is gone. Not an ifstream: a
// process that exits between the open and the read makes read fail with
// ESRCH, which libstdc++'s filebuf turns into an exception.
std::string read_proc(const std::string& path) {
    std::string out;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return out;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return out;
}

// Fields after the command of /proc/PID/stat ("S ppid ..."), empty if gone.
std::vector<std::string> stat_fields(int pid) {
    const std::string s = read_proc(fmt::format("/proc/{}/stat", pid));
    const size_t close = s.rfind(')');
    if (close == std::string::npos) return {};
    std::vector<std::string> out;
    std::istringstream rest(s.substr(close + 1));
    for (std::string f; rest >> f;) out.push_back(f);
    return out;
}

// Field 22 of /proc/PID/stat: tells a reused pid apart.
uint64_t start_ticks(int pid) {
    const auto f = stat_fields(pid);
    return f.size() > 19 ? std::stoull(f[19]) : 0;
}

// The same process (not a reused pid) still runs; a zombie does not.
bool running(int pid, uint64_t ticks) {
    const auto f = stat_fields(pid);
    return f.size() > 19 && f[0] != "Z" && std::stoull(f[19]) == ticks;
}

bool is_descendant(int pid) {
    const int self = getpid();
    for (int p = pid, hops = 0; p > 1 && hops < 64; ++hops) {
        const auto f = stat_fields(p);
        if (f.size() < 2) return false;
        p = std::atoi(f[1].c_str());
        if (p == self) return true;
    }
    return false;
}

std::string comm(int pid) {
    std::string s = read_proc(fmt::format("/proc/{}/comm", pid));
    return s.substr(0, s.find('\n'));
}

// --- The processes of the tree --------------------------------------------------

struct Tracked {
    int pid = 0;
    std::string command;
    uint64_t ticks = 0;  // start time of the process, to tell a reused pid apart
    std::optional<Reader> reader;
    ino_t segment_inode = 0;
    std::optional<Metrics> last_poll;
    std::string source;  // where its final metrics came from (see README)
    std::optional<Metrics> final;
};

ino_t inode_of(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

std::optional<Metrics> read_all(Reader& r, int fresh_ms) {
    auto snap = r.ReadAll({.fresh_timeout_ms = fresh_ms});
    if (!snap) return std::nullopt;
    return Metrics{r.All(), std::move(snap->values)};
}

// Reads a live tracked process, (re)opening its segment when it is new: an
// exec'd image replaces the segment under the same name.
void poll_one(Tracked& t) {
    const std::string path = segment_path(t.pid);
    const ino_t ino = inode_of(path);
    if (ino == 0) return;
    if (!t.reader || ino != t.segment_inode) {
        auto r = Reader::open_path(path, t.pid);
        if (!r) return;  // still being created: next time
        t.reader.emplace(std::move(*r));
        t.segment_inode = ino;
    }
    if (auto m = read_all(*t.reader, 20)) t.last_poll = std::move(m);
}

class Tree {
public:
    explicit Tree(std::string report_dir) : dir_(std::move(report_dir)) {}

    void notice(int pid) {
        if (tracked_.count(pid) || !is_descendant(pid)) return;
        Tracked t;
        t.pid = pid;
        t.command = comm(pid);
        t.ticks = start_ticks(pid);
        tracked_.emplace(pid, std::move(t));
    }

    void poll() {
        for (auto& [pid, t] : tracked_)
            if (!t.final && running(pid, t.ticks)) poll_one(t);
    }

    // After CMD ended: the final metrics of every process, best source first.
    void finish() {
        for (const auto& e : fs::directory_iterator(dir_)) {  // a report whose segment was never seen
            const std::string f = e.path().filename().string();
            int pid = 0;
            if (std::sscanf(f.c_str(), "report.%d.json", &pid) == 1 && !tracked_.count(pid))
                tracked_.emplace(pid, Tracked{.pid = pid, .command = {}, .ticks = 0, .reader = {}, .segment_inode = 0, .last_poll = {}, .source = {}, .final = {}});
        }
        for (auto& [pid, t] : tracked_) finish_one(t);
    }

    const std::map<int, Tracked>& processes() const { return tracked_; }

private:
    void finish_one(Tracked& t) {
        const std::string report = fmt::format("{}/report.{}.json", dir_, t.pid);
        if (access(report.c_str(), R_OK) == 0) {
            std::ifstream in(report);
            const json doc = json::parse(in, nullptr, false);
            if (!doc.is_discarded()) {
                try {
                    t.final = from_report(report_from_json(doc, report));
                    t.source = "exit-report";
                    return;
                } catch (const Failure&) {
                }
            }
        }
        const std::string segment = segment_path(t.pid);
        if (t.ticks && running(t.pid, t.ticks)) {  // still running (a daemon CMD left behind)
            poll_one(t);
            if (t.last_poll) {
                t.final = std::move(t.last_poll);
                t.source = "running";
                return;
            }
        } else {
            // Died without an exit report (a signal, _exit): the last snapshot
            // of its segment, through the mapping kept since the last poll
            // (which outlives a `gometrics-cli gc` run meanwhile), or opened now.
            if (!t.reader || inode_of(segment) != t.segment_inode) {
                if (auto r = Reader::open_path(segment, t.pid); r && (!t.ticks || r->proc_start_ticks() == t.ticks)) {
                    t.reader.emplace(std::move(*r));
                    t.segment_inode = inode_of(segment);
                }
            }
            if (t.reader) {
                if (auto m = read_all(*t.reader, 0)) {
                    t.final = std::move(m);
                    t.source = "segment";
                    if (inode_of(segment) == t.segment_inode) ::unlink(segment.c_str());
                    return;
                }
            }
        }
        if (t.last_poll) {
            t.final = std::move(t.last_poll);
            t.source = "last-poll";
            return;
        }
        t.source = "none";
    }

    static Metrics from_report(const Report& r) {
        Metrics m;
        for (const auto& x : r.metrics) {
            m.descs.push_back(x.desc);
            m.values.push_back(x.value);
        }
        return m;
    }

    std::string dir_;
    std::map<int, Tracked> tracked_;
};

// --- Reports ---------------------------------------------------------------------

json metrics_json(const std::vector<Description>& descs, const std::vector<Value>& values) {
    json arr = json::array();
    for (size_t i = 0; i < descs.size(); ++i)
        arr.push_back({{"name", descs[i].name}, {"kind", to_string(descs[i].kind)},
                       {"cumulative", descs[i].cumulative},
                       {"aggregation", to_string(descs[i].aggregation)}, {"value", value_to_json(values[i])}});
    return arr;
}

// --- Running CMD ------------------------------------------------------------------

volatile sig_atomic_t g_child = 0;

void forward_signal(int sig) {
    if (g_child > 0) kill(g_child, sig);
}

struct Ended {
    int pid = 0;     // CMD's
    int status = 0;  // CMD's exit status, 128+N for a signal death
    int signal = 0;
};

// Runs CMD and, while it runs, follows its process tree. Returns CMD's status.
Ended run(const Options& o, Tree& tree) {
    // Before fork, so that no segment of the tree is created unseen.
    const int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (in < 0 || inotify_add_watch(in, "/dev/shm", IN_CREATE) < 0)
        fmt::print(stderr, "gometrics-cli: cannot watch /dev/shm ({}): processes that die without an exit report "
                           "will be missing\n", std::strerror(errno));
    prctl(PR_SET_CHILD_SUBREAPER, 1);

    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0) throw Failure(kExitError, fmt::format("pipe: {}", std::strerror(errno)));
    std::vector<char*> argv;
    for (const auto& a : o.command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);

    const pid_t child = fork();
    if (child < 0) throw Failure(kExitError, fmt::format("fork: {}", std::strerror(errno)));
    if (child == 0) {
        execvp(argv[0], argv.data());
        const int err = errno;
        (void)!write(errpipe[1], &err, sizeof err);
        _exit(127);
    }
    close(errpipe[1]);
    g_child = child;
    // The terminal's Ctrl-C and Ctrl-\ reach CMD directly (same process
    // group); exec outlives them to report. Other signals are passed on.
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    struct sigaction sa {};
    sa.sa_handler = forward_signal;
    sa.sa_flags = SA_RESTART;
    for (int s : {SIGTERM, SIGHUP, SIGUSR1, SIGUSR2}) sigaction(s, &sa, nullptr);

    int exec_errno = 0;
    const bool exec_failed = read(errpipe[0], &exec_errno, sizeof exec_errno) == sizeof exec_errno;
    close(errpipe[0]);

    Ended ended;
    // Readable when CMD exits, so that exec does not sleep out a poll period
    // after it (pidfd_open: Linux 5.3; without it, the period is waited).
    const int cmd_fd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
    bool done = false;
    char buf[4096] __attribute__((aligned(alignof(inotify_event))));
    auto next_poll = std::chrono::steady_clock::now();
    while (!done) {
        pollfd fds[2] = {{in, POLLIN, 0}, {cmd_fd, POLLIN, 0}};  // poll() skips a negative fd
        const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_poll - std::chrono::steady_clock::now());
        ::poll(fds, 2, static_cast<int>(std::max<int64_t>(0, wait.count())));
        for (ssize_t n; in >= 0 && (n = read(in, buf, sizeof buf)) > 0;) {
            for (char* at = buf; at < buf + n;) {
                const auto* ev = reinterpret_cast<const inotify_event*>(at);
                std::string_view name = ev->len ? ev->name : "";
                if (name.starts_with(kSegmentPrefix)) {
                    const int pid = std::atoi(name.substr(kSegmentPrefix.size()).data());
                    if (pid > 0) tree.notice(pid);
                }
                at += sizeof(inotify_event) + ev->len;
            }
        }
        if (std::chrono::steady_clock::now() >= next_poll) {
            tree.poll();
            next_poll = std::chrono::steady_clock::now() + std::chrono::milliseconds(kPollMs);
        }
        // Reap CMD and any orphan handed to us as subreaper.
        for (int st; ;) {
            const pid_t r = waitpid(-1, &st, WNOHANG);
            if (r <= 0) break;
            if (r != child) continue;
            done = true;
            ended.pid = child;
            if (WIFSIGNALED(st)) {
                ended.status = 128 + WTERMSIG(st);
                ended.signal = WTERMSIG(st);
            } else {
                ended.status = WEXITSTATUS(st);
            }
        }
    }
    g_child = 0;
    if (in >= 0) close(in);
    if (cmd_fd >= 0) close(cmd_fd);
    if (exec_failed)
        throw Failure(exec_errno == ENOENT ? 127 : 126,
                      fmt::format("cannot run {}: {}", o.command[0], std::strerror(exec_errno)));
    return ended;
}

// --- Profiles ------------------------------------------------------------------------

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

std::string with_pid(std::string file, int pid) {
    for (size_t at; (at = file.find("%p")) != std::string::npos;) file.replace(at, 2, std::to_string(pid));
    return file;
}

// Converts the profile reports CMD's processes wrote at exit into the
// requested files. False, with one line on stderr each, when a profile could
// not be written (no report: the process was killed or ended with _exit; or
// that kind was not sampled).
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
            fmt::print(stderr, "gometrics-cli: no {} profile in {}: {}\n", r.kind, file, f.what());
            ok = false;
        }
    };
    for (const ProfileRequest& r : requests) {
        if (r.file.find("%p") != std::string::npos) {
            if (reporters.empty()) {
                fmt::print(stderr, "gometrics-cli: no {} profile: no process wrote a profile report (killed by a "
                                   "signal, or ended with _exit)\n", r.kind);
                ok = false;
            }
            for (int pid : reporters) convert(r, pid, with_pid(r.file, pid));
        } else if (std::find(reporters.begin(), reporters.end(), cmd_pid) == reporters.end()) {
            fmt::print(stderr, "gometrics-cli: no {} profile in {}: CMD (process {}) wrote no profile report (killed "
                               "by a signal, or ended with _exit){}\n", r.kind, r.file, cmd_pid,
                       reporters.empty() ? "" : "; put %p in FILE for its children's");
            ok = false;
        } else {
            convert(r, cmd_pid, r.file);
        }
    }
    return ok;
}

// --- Summary and report -------------------------------------------------------------

std::string tree_cpu(const rusage& ru) {
    const double user = double(ru.ru_utime.tv_sec) + double(ru.ru_utime.tv_usec) * 1e-6;
    const double sys = double(ru.ru_stime.tv_sec) + double(ru.ru_stime.tv_usec) * 1e-6;
    return fmt::format("{} (user {}, system {})", human(user + sys, "seconds"), human(user, "seconds"),
                       human(sys, "seconds"));
}

void print_summary(const Options& o, const Ended& e, const Tree& tree, const Report& agg, const rusage& ru) {
    const size_t n = tree.processes().size();
    const auto value = [&](std::string_view name) -> std::string {
        const Value* v = agg.find(name);
        if (!v) return "-";
        const double d = v->kind == ValueKind::Uint64 ? double(v->u64) : v->kind == ValueKind::Float64 ? v->f64 : NAN;
        return std::isnan(d) ? "-" : human(d, unit_of(name));
    };
    // Over several processes, what a value is of, as the metric aggregates.
    const std::vector<ReportMetric> all = agg.all();
    const auto of = [&](std::string_view name) -> std::string_view {
        const auto m = std::find_if(all.begin(), all.end(), [&](const ReportMetric& r) { return r.desc.name == name; });
        if (n < 2 || m == all.end()) return "";
        const Aggregation a = aggregation_of(m->desc);
        return a == Aggregation::Sum ? " (all processes)" : a == Aggregation::Max ? " (largest process)" : "";
    };
    size_t complete = 0;
    for (const auto& [pid, t] : tree.processes()) complete += t.source == "exit-report";
    std::string how = e.signal ? fmt::format("was killed by signal {} ({}), status {}", e.signal,
                                             strsignal(e.signal), e.status)
                               : fmt::format("exited with status {}", e.status);
    fmt::print(stderr, "gometrics: {} {}; {} instrumented process{}{}\n", o.command[0], how, n, n == 1 ? "" : "es",
               complete == n ? "" : fmt::format(" ({} without an exit report)", n - complete));
    fmt::print(stderr, "  allocations   {} objects, {}\n", value("/gc/heap/allocs:objects"), value("/gc/heap/allocs:bytes"));
    fmt::print(stderr, "  live heap     peak {}{}, at exit {}{}\n", value(kLivePeak), of(kLivePeak),
               value("/gc/heap/live:bytes"), of("/gc/heap/live:bytes"));
    fmt::print(stderr, "  threads       {} created\n", value("/sched/threads-created:threads"));
    fmt::print(stderr, "  mutex wait    {}\n", value("/sync/mutex/wait/total:seconds"));
    fmt::print(stderr, "  cpu           {}\n", tree_cpu(ru));
    fmt::print(stderr, "  peak rss      {}{}\n", value(kRssPeak), of(kRssPeak));
}

void write_file(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << text;
        if (!out.flush()) throw Failure(kExitError, fmt::format("cannot write {}: {}", path, std::strerror(errno)));
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        ::unlink(tmp.c_str());
        throw Failure(kExitError, fmt::format("cannot write {}: {}", path, std::strerror(errno)));
    }
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
    const Ended ended = run(o, tree);
    tree.finish();
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
    if (!o.quiet) print_summary(o, ended, tree, report, ru);
    const auto results = run_checks(report, checks, o.quiet, stderr);
    bool failed = false;
    doc["checks"] = json::array();
    for (size_t i = 0; i < checks.size(); ++i) {
        failed |= !results[i].passed;
        doc["checks"].push_back(
            {{"check", checks[i].text}, {"passed", results[i].passed}, {"message", results[i].message}});
    }
    if (!o.report.empty()) write_file(o.report, doc.dump(2) + "\n");
    const bool profiled = write_profiles(profiles, dir, ended.pid, o.quiet);

    if (ended.status != 0) return ended.status;
    return failed || !profiled ? kExitError : kExitOk;
}

}  // namespace

void add_exec_command(CLI::App& app, int& status) {
    static Options o;
    auto* e = app.add_subcommand("exec", "Run CMD under the agent (children included); summarise, report and check it");
    e->add_option("--report", o.report, "Write the final report (dump's JSON + command, exit status, peaks) here");
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
