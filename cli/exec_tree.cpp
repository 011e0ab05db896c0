// Following CMD's process tree; see exec_tree.h.
#include "exec_tree.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "common.h"
#include "proc.h"
#include "report_file.h"

namespace gometrics::cli {

namespace {

namespace fs = std::filesystem;

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

std::string proc_stat(int pid) { return read_proc(fmt::format("/proc/{}/stat", pid)); }

// Field 22 of /proc/PID/stat: tells a reused pid apart.
uint64_t start_ticks(int pid) { return sys::stat_field(proc_stat(pid), 22).value_or(0); }

// The same process (not a reused pid) still runs; a zombie does not.
bool running(int pid, uint64_t ticks) {
    const std::string s = proc_stat(pid);
    const auto state = sys::stat_state(s);
    return state && *state != 'Z' && sys::stat_field(s, 22) == ticks;
}

bool is_descendant(int pid) {
    const int self = getpid();
    for (int p = pid, hops = 0; p > 1 && hops < 64; ++hops) {
        const auto ppid = sys::stat_field(proc_stat(p), 4);
        if (!ppid) return false;
        p = static_cast<int>(*ppid);
        if (p == self) return true;
    }
    return false;
}

std::string comm(int pid) {
    std::string s = read_proc(fmt::format("/proc/{}/comm", pid));
    return s.substr(0, s.find('\n'));
}

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

Metrics from_report(const Report& r) {
    Metrics m;
    for (const auto& x : r.metrics) {
        m.descs.push_back(x.desc);
        m.values.push_back(x.value);
    }
    return m;
}

}  // namespace

void Tree::notice(int pid) {
    if (tracked_.count(pid) || !is_descendant(pid)) return;
    Tracked t;
    t.pid = pid;
    t.command = comm(pid);
    t.ticks = start_ticks(pid);
    tracked_.emplace(pid, std::move(t));
}

void Tree::poll() {
    for (auto& [pid, t] : tracked_)
        if (!t.final && running(pid, t.ticks)) poll_one(t);
}

void Tree::finish() {
    for (const auto& e : fs::directory_iterator(dir_)) {  // a report whose segment was never seen
        const std::string f = e.path().filename().string();
        int pid = 0;
        if (std::sscanf(f.c_str(), "report.%d.json", &pid) == 1 && !tracked_.count(pid))
            tracked_.emplace(pid, Tracked{.pid = pid, .command = {}, .ticks = 0, .reader = {}, .segment_inode = 0, .last_poll = {}, .source = {}, .final = {}});
    }
    for (auto& [pid, t] : tracked_) finish_one(t);
}

void Tree::finish_one(Tracked& t) {
    const std::string report = fmt::format("{}/report.{}.json", dir_, t.pid);
    if (access(report.c_str(), R_OK) == 0) {
        try {
            t.final = from_report(load_report(report));
            t.source = "exit-report";
            return;
        } catch (const Failure&) {  // unreadable, or no report: the segment's figures below
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

}  // namespace gometrics::cli
