// The reader library's process discovery: the processes that publish a
// segment in /dev/shm, and whether each still runs (the pid maps the
// segment). Reader::open(pid) checks the same before it hands out a reader.
// Included by reader.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "result.h"

namespace gometrics {

// A process that has (or had) a segment in /dev/shm.
struct ProcessInfo {
    int pid = 0;
    std::string command;  // /proc/PID/comm, empty when dead
    uint64_t start_time_ns = 0;
    bool alive = false;     // the process that wrote it still runs (its pid maps it)
    bool readable = false;  // we may open its segment
    std::string segment;    // path in /dev/shm
    std::string problem;    // why a segment of ours (this user's) cannot be read: a corrupt or newer one
};

// Every gometrics segment visible in /dev/shm, sorted by pid.
std::vector<ProcessInfo> list_processes();
// Removes the segments whose process is gone: regular files only (anything
// else of that name is not a segment), each tried whatever befell the others.
struct StaleRemoval {
    int removed = 0;
    int others = 0;                   // another user's, which only they or root may remove
    std::vector<std::string> errors;  // "path: why", one per segment left for another reason
};
StaleRemoval remove_stale_segments();
std::string segment_path(int pid);
// A thread of pid whose /proc entries and memory can be reached: pid
// itself, or another when the main thread has ended (pthread_exit in main):
// an ended main thread's maps read empty, its root cannot be followed and
// its memory is gone. pid too when nothing can be read (the caller says so).
int live_thread(int pid);
// /proc/PID, or /proc/PID/task/TID of live_thread(pid).
std::string live_proc_dir(int pid);
// Whether process pid maps the file at `path`, told by device and inode (a
// reused pid does not, nor an image exec'd without the agent; names and
// start times differ across namespaces); nullopt when its maps cannot be
// read (another user's process).
std::optional<bool> maps_file(int pid, const std::string& path);

}  // namespace gometrics
