// Descriptors the agent keeps for the life of the process, out of the
// program's way: opened once while nothing else can be surprised by a new
// descriptor (start-up, or a forked child's first counted call), moved to a
// high number with FD_CLOEXEC, and re-read with pread from offset 0 (/proc
// and cgroup files regenerate their text on every read). Programs close
// descriptors they did not open and reuse the numbers, so every use first
// checks that the number still names the file we opened.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string_view>

#include "proc.h"  // confined()

namespace gometrics::sys {

// The lowest number a kept descriptor may take, or -1 when RLIMIT_NOFILE is
// too low to keep any without taking one the program may need.
int kept_fd_floor() noexcept;

// While one lives, the calling thread's kept_fd_floor() is the one read as
// it began: files kept together at start-up ask for the limit once, as
// nothing else runs then to change it.
class KeptFloorHeld {
public:
    KeptFloorHeld() noexcept;
    ~KeptFloorHeld();
    KeptFloorHeld(const KeptFloorHeld&) = delete;
    KeptFloorHeld& operator=(const KeptFloorHeld&) = delete;

private:
    int outer_;
};

// Gives the calling thread a descriptor table of its own (unshare
// CLONE_FILES) that holds only the kept descriptors: what the thread opens
// from then on never takes a number the program may be about to get, and a
// number the program closes or reuses stays ours there. Not even stderr is
// held (a pipe the program closes must reach EOF). For the agent's own
// thread, once, first thing. 0 or an errno value.
int take_private_descriptor_table() noexcept;
// Whether the calling thread did, so that it may open files at any time.
bool has_private_descriptor_table() noexcept;
// The program's descriptor `fd` as the calling thread may write it now: fd
// itself, or on a thread with a table of its own a duplicate of whatever
// the program's table holds at that number (pidfd_getfd), or -1 (none, or
// confined). release_program_fd() after the write.
int borrow_program_fd(int fd) noexcept;
void release_program_fd(int borrowed, int fd) noexcept;

// Whether entry `name` of the program's /proc/self/fd (open as `proc_fd_dir`)
// is one of the kept descriptors: counts of the program's own leave it out.
// Asked of the file the entry leads to, as the thread with a table of its
// own keeps its copies whatever the program closed.
bool is_kept_entry(int proc_fd_dir, const char* name) noexcept;

class KeptFile {
public:
    // Opens `path` relative to `dirfd` (AT_FDCWD: absolute) and moves it to
    // kept_fd_floor() or above. 0, or an errno value (EMFILE when the limit
    // leaves no room).
    int open(int dirfd, const char* path, int flags, mode_t mode = 0) noexcept;
    // The same for a descriptor already open (a duplicate is kept; the
    // caller still closes `fd`).
    int adopt(int fd) noexcept;

    // The descriptor when it is still ours, else -1 (the program closed or
    // replaced it: from then on the file is lost, and never touched again).
    // A lost file is reported once through the return of lost_now().
    int fd() noexcept;
    bool is_open() const noexcept { return fd_ >= 0; }
    // True exactly once: on the first fd() call that found the file gone.
    bool lost_now() noexcept;

    // A small file's whole text, read with pread from offset 0, or nullopt.
    std::optional<std::string_view> read(char* buf, size_t size) noexcept;
    // The same without the ownership check, for a text that proves itself
    // (pread moves no offset: a number the program reused comes to no harm).
    std::optional<std::string_view> peek(char* buf, size_t size) const noexcept;

    // Closes it if it is still ours.
    void close() noexcept;

private:
    // Keeps a duplicate of fd at `floor` or above.
    int keep(int fd, int floor, bool writable) noexcept;

    int fd_ = -1;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
    bool lost_ = false, said_ = false, writable_ = false;
};

}  // namespace gometrics::sys
