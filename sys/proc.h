// /proc files: read whole into caller buffers with plain system calls (no
// allocation, usable from the agent's start-up and exit paths), and pure
// parsers over their text. Unit-tested in tests/unit/sys/test_sys.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace gometrics::sys {

// Reads a whole (small) file, relative to `dirfd` (AT_FDCWD for an absolute
// path), into buf; the text, or nullopt when it cannot be opened or read or
// is empty. Longer files are truncated to the buffer.
std::optional<std::string_view> read_file(int dirfd, const char* path, char* buf, size_t size) noexcept;
// The same for an open descriptor, read with pread from offset 0 (/proc and
// cgroup files regenerate their text on every read from the start).
std::optional<std::string_view> read_whole(int fd, char* buf, size_t size) noexcept;

// The program confined itself with seccomp, as the agent learned it (from
// its own hook on the call, or from /proc/self/status). From then on the
// agent makes only the calls such a filter is likely to allow: kept
// descriptors (kept_file.h) are no longer checked with fstat (a read-only
// one is still read: pread of a number the program reused does no harm,
// and the text will not parse), a writable one is never written again.
void set_confined(bool confined) noexcept;
bool confined() noexcept;

// getpid(), or once the program confined itself (sys::confined) the answer
// it gave last, as the filter may forbid the call.
int self_pid() noexcept;

// The number after "Key:" on its line of a /proc/PID/status text
// ("VmRSS:\t  1234 kB" gives 1234: the unit is the caller's business).
std::optional<uint64_t> status_field(std::string_view status, std::string_view key) noexcept;

// status_field for each of `keys` (at most 64) into `out`, in one pass over
// the text: a snapshot wants several fields of its 60 lines, each read
// on its own scanned the whole text again.
void status_fields(std::string_view status, std::span<const std::string_view> keys,
                   std::span<std::optional<uint64_t>> out) noexcept;

// /proc/PID/stat fields we use (numbers as in proc(5)); the command name
// in parentheses may itself hold spaces and parentheses.
struct ProcStat {
    uint64_t minflt, majflt;  // page faults without and with I/O
    uint64_t utime, stime;    // clock ticks
    uint64_t num_threads;
    uint64_t starttime;       // clock ticks after boot: tells a reused pid apart
};
std::optional<ProcStat> parse_stat(std::string_view text) noexcept;
// Field `field` of a /proc/PID/stat text (1-based, as in proc(5); 3 and
// beyond), when it is an unsigned number.
std::optional<uint64_t> stat_field(std::string_view text, int field) noexcept;
// Field 3, the state letter ('R', 'S', 'Z' for a zombie, ...).
std::optional<char> stat_state(std::string_view text) noexcept;

// /proc/PID/task/TID/schedstat: "run_ns wait_ns timeslices".
struct Schedstat {
    uint64_t run_ns, wait_ns, timeslices;
};
std::optional<Schedstat> parse_schedstat(std::string_view text) noexcept;

// One line of /proc/PID/maps: "start-end perms offset dev inode   path".
struct MapsLine {
    uint64_t start, end, offset;
    std::string_view perms;  // "r-xp"
    std::string_view path;   // empty for an anonymous mapping
};
std::optional<MapsLine> parse_maps_line(std::string_view line) noexcept;

}  // namespace gometrics::sys
