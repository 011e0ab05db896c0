// The reader library's process discovery: which processes publish a
// segment, where it is, and whether the process that wrote it still runs;
// see processes.h. The segment protocol itself is reader.cpp's.
#include "processes.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "files.h"
#include "layout.h"
#include "proc.h"
#include "reader.h"

namespace gometrics {

std::string segment_path(int pid) { return "/dev/shm/" + std::string(layout::kShmPrefix) + std::to_string(pid); }

int live_thread(int pid) {
    const std::string proc = "/proc/" + std::to_string(pid);
    const auto has_maps = [](const std::string& dir) {
        std::ifstream maps(dir + "/maps");
        return maps && maps.peek() != std::ifstream::traits_type::eof();
    };
    if (has_maps(proc)) return pid;
    int found = pid;
    if (DIR* d = opendir((proc + "/task").c_str())) {
        while (dirent* e = readdir(d)) {
            if (e->d_name[0] != '.' && has_maps(proc + "/task/" + e->d_name)) {
                found = std::atoi(e->d_name);
                break;
            }
        }
        closedir(d);
    }
    return found;
}

std::string live_proc_dir(int pid) {
    const int tid = live_thread(pid);
    const std::string proc = "/proc/" + std::to_string(pid);
    return tid == pid ? proc : proc + "/task/" + std::to_string(tid);
}

std::optional<bool> maps_file(int pid, const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return false;
    std::ifstream maps(live_proc_dir(pid) + "/maps");  // can be long: a line at a time
    if (!maps) return std::nullopt;
    for (std::string line; std::getline(maps, line);) {
        unsigned dev_major = 0, dev_minor = 0;
        unsigned long inode = 0;
        if (std::sscanf(line.c_str(), "%*s %*s %*s %x:%x %lu", &dev_major, &dev_minor, &inode) == 3 &&
            inode == st.st_ino && dev_major == major(st.st_dev) && dev_minor == minor(st.st_dev))
            return true;
    }
    return false;
}

namespace {

std::string proc_path(int pid, const char* file) { return "/proc/" + std::to_string(pid) + "/" + file; }

// Field 22 of /proc/PID/stat (start time in clock ticks since boot), or 0.
uint64_t proc_start_ticks(int pid) {
    char buf[4096];
    const auto text = sys::read_file(AT_FDCWD, proc_path(pid, "stat").c_str(), buf, sizeof buf);
    const auto st = text ? sys::parse_stat(*text) : std::nullopt;
    return st ? st->starttime : 0;
}

std::string read_comm(int pid) {
    char buf[64];
    const auto text = sys::read_file(AT_FDCWD, proc_path(pid, "comm").c_str(), buf, sizeof buf);
    if (!text) return {};
    return std::string(text->substr(0, text->find('\n')));
}

bool pid_exists(int pid) { return kill(pid, 0) == 0 || errno == EPERM; }

// The process that wrote the segment still runs: its pid maps the file.
// Where its maps cannot be read (another user's), the same start time tells
// a reused pid apart.
bool is_live(int pid, uint64_t start_ticks, const std::string& segment) {
    if (!pid_exists(pid)) return false;
    const auto maps = maps_file(pid, segment);
    return maps ? *maps : proc_start_ticks(pid) == start_ticks;
}

}  // namespace

Result<Reader> Reader::open(int pid) {
    if (pid <= 0) return Error{"invalid pid " + std::to_string(pid)};
    const std::string path = segment_path(pid);
    const int fd = open_fd(path);
    if (fd < 0) {
        const int e = errno;
        if (e == ENOENT)
            return Error{pid_exists(pid) ? "process " + std::to_string(pid) + " is not instrumented (no " + path + ")"
                                         : "no process " + std::to_string(pid)};
        if (e == EACCES) return Error{path + ": permission denied (the segment belongs to another user)"};
        return Error{path + ": " + sys::open_error(e)};
    }
    auto r = map_and_validate(fd, path, pid);
    if (r && !is_live(pid, r->proc_start_ticks(), path))
        return Error{"process " + std::to_string(pid) + " has exited (its stale segment " + path +
                     " is removed by `gometrics-cli gc`)"};
    return r;
}

namespace {

// A segment of this user's, for `pid`, that its agent has finished
// creating: a header's worth of bytes, the magic written. One not yet is a
// process starting, not a problem to report; one naming another pid is not
// this process's (an earlier one's, or one from another pid namespace).
bool ours_settled_and_for(const std::string& path, int pid) {
    const int fd = sys::open_regular(path.c_str(), O_RDONLY);
    if (fd < 0) return false;
    struct stat st;
    layout::SegmentHeader h{};
    const bool read = fstat(fd, &st) == 0 && st.st_uid == geteuid() &&
                      st.st_size >= static_cast<off_t>(sizeof h) &&
                      pread(fd, &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h);
    ::close(fd);
    return read && h.magic != 0 && (h.magic != layout::kMagic || h.pid == pid);
}

}  // namespace

std::vector<ProcessInfo> list_processes() {
    std::vector<ProcessInfo> out;
    DIR* d = opendir("/dev/shm");
    if (!d) return out;
    const std::string prefix = layout::kShmPrefix;
    while (dirent* e = readdir(d)) {
        const std::string name = e->d_name;
        if (name.compare(0, prefix.size(), prefix) != 0) continue;
        const std::string digits = name.substr(prefix.size());
        if (digits.empty() || digits.size() > 9 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
        ProcessInfo p;
        p.pid = std::stoi(digits);
        p.segment = "/dev/shm/" + name;
        if (auto r = Reader::open_path(p.segment, p.pid)) {
            p.readable = true;
            p.start_time_ns = r->start_time_ns();
            p.alive = is_live(p.pid, r->proc_start_ticks(), p.segment);
        } else {
            // Unreadable (another user's, or corrupt): alive is all we can tell.
            p.alive = pid_exists(p.pid);
            if (p.alive && ours_settled_and_for(p.segment, p.pid)) p.problem = r.error().message;
        }
        if (p.alive) p.command = read_comm(p.pid);
        out.push_back(std::move(p));
    }
    closedir(d);
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.pid < b.pid; });
    return out;
}

StaleRemoval remove_stale_segments() {
    StaleRemoval r;
    for (const auto& p : list_processes()) {
        struct stat st;
        if (p.alive || lstat(p.segment.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (::unlink(p.segment.c_str()) == 0)
            ++r.removed;
        else if (errno == EPERM || errno == EACCES)
            ++r.others;  // /dev/shm is sticky
        else if (errno != ENOENT)
            r.errors.push_back(p.segment + ": " + std::strerror(errno));
    }
    return r;
}

}  // namespace gometrics
