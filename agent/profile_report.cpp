// The exit profile report; see profile_report.h.
//
// Format (version 1), one JSON object:
//   {"format": "gometrics-profile-report", "version": 1, "pid": P,
//    "time_ns": now, "start_time_ns": when the agent started in this process,
//    "heap_rate": R, "mutex_fraction": F, "dropped_samples": D, "untracked_frees": U,
//    "exe": "/path/of/the/executable",
//    "stacks": [{"kind": "heap"|"mutex", "pcs": [leaf first, ...],
//                "alloc_objects": .., "alloc_bytes": .., "free_objects": .., "free_bytes": ..,
//                "contentions": .., "delay_ns": ..}, ...],
//    "maps": ["/proc/self/maps line of an executable file mapping", ...]}
// Counts are raw samples, as in the segment's profile region; the CLI
// scales them. The stacks come from profile::publish into a private copy of
// the region, so this file only formats what the segment would show.
#include "profile_report.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "agent.h"
#include "layout.h"
#include "log.h"
#include "profile.h"

namespace gometrics::agent {

namespace {

using Buffer = fmt::memory_buffer;

// A JSON string: paths in /proc/self/maps may hold quotes, backslashes and
// control characters (a newline shows as "\012" there, but be safe).
void append_string(Buffer& out, std::string_view s) {
    out.push_back('"');
    for (const char c : s) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (static_cast<unsigned char>(c) < 0x20) {
            fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(c));
        } else {
            out.push_back(c);
        }
    }
    out.push_back('"');
}

std::string read_file(const char* path) {
    std::string text;
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return text;
    char chunk[4096];
    for (ssize_t n; (n = read(fd, chunk, sizeof chunk)) > 0;) text.append(chunk, static_cast<size_t>(n));
    close(fd);
    return text;
}

// Lines mapping a file executable ("start-limit r-xp offset dev inode /path"):
// the only ones a profile's addresses can fall in.
void append_maps(Buffer& out) {
    const std::string maps = read_file("/proc/self/maps");
    bool first = true;
    for (size_t at = 0; at < maps.size();) {
        size_t end = maps.find('\n', at);
        if (end == std::string::npos) end = maps.size();
        const std::string_view line(maps.data() + at, end - at);
        at = end + 1;
        const size_t perms = line.find(' ');
        if (perms == std::string_view::npos || perms + 3 >= line.size() || line[perms + 3] != 'x' ||
            line.find(" /") == std::string_view::npos)
            continue;
        if (!first) out.push_back(',');
        first = false;
        out.append(std::string_view("\n  "));
        append_string(out, line);
    }
}

void append_stacks(Buffer& out, const layout::ProfileHeader& h, const unsigned char* records) {
    const char* sep = "";
    for (uint64_t i = 0; i < h.stack_count; ++i) {
        const unsigned char* rec = records + i * h.record_size;
        layout::StackRecord r;
        std::memcpy(&r, rec, sizeof r);
        if (r.kind != layout::kStackHeap && r.kind != layout::kStackMutex) continue;  // unused record
        std::vector<uint64_t> pcs(r.depth);
        std::memcpy(pcs.data(), rec + sizeof r, r.depth * sizeof(uint64_t));
        fmt::format_to(std::back_inserter(out),
                       "{}\n  {{\"kind\": \"{}\", \"pcs\": [{}], \"alloc_objects\": {}, \"alloc_bytes\": {}, "
                       "\"free_objects\": {}, \"free_bytes\": {}, \"contentions\": {}, \"delay_ns\": {}}}",
                       sep, r.kind == layout::kStackHeap ? "heap" : "mutex", fmt::join(pcs, ", "), r.alloc_objects,
                       r.alloc_bytes, r.free_objects, r.free_bytes, r.contentions, r.delay_ns);
        sep = ",";
    }
}

bool write_all(const std::string& path, const Buffer& out) {
    const std::string tmp = path + ".tmp." + std::to_string(getpid());
    const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    size_t off = 0;
    while (off < out.size()) {
        const ssize_t n = ::write(fd, out.data() + off, out.size() - off);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
    }
    const bool ok = close(fd) == 0 && off == out.size() && rename(tmp.c_str(), path.c_str()) == 0;
    if (!ok) unlink(tmp.c_str());
    return ok;
}

uint64_t realtime_ns() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
}

}  // namespace

void write_profile_report(const char* path) noexcept {
    try {
        std::string final_path = path;
        for (size_t at; (at = final_path.find("%p")) != std::string::npos;)
            final_path.replace(at, 2, std::to_string(getpid()));
        // A private copy of the region; all zero (rates 0, no stacks) when
        // profiling is off, which the CLI reports as such.
        std::vector<uint64_t> region((std::max(profile::region_bytes(), sizeof(layout::ProfileHeader)) + 7) / 8);
        profile::publish(region.data());
        layout::ProfileHeader h;
        std::memcpy(&h, region.data(), sizeof h);

        Buffer out;
        fmt::format_to(std::back_inserter(out),
                       "{{\"format\": \"gometrics-profile-report\", \"version\": 1, \"pid\": {}, \"time_ns\": {}, "
                       "\"start_time_ns\": {}, \"heap_rate\": {}, \"mutex_fraction\": {}, \"dropped_samples\": {}, "
                       "\"untracked_frees\": {},\n\"exe\": ",
                       getpid(), realtime_ns(), start_time_ns(), h.heap_rate, h.mutex_fraction, h.dropped_samples,
                       h.untracked_frees);
        char exe[4096];
        const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe);
        append_string(out, std::string_view(exe, n > 0 && size_t(n) < sizeof exe ? size_t(n) : 0));
        out.append(std::string_view(",\n\"stacks\": ["));
        append_stacks(out, h, reinterpret_cast<const unsigned char*>(region.data() + sizeof h / 8));
        out.append(std::string_view("],\n\"maps\": ["));
        append_maps(out);
        out.append(std::string_view("]}\n"));
        if (!write_all(final_path, out)) log::line({"cannot write profile report ", final_path});
    } catch (...) {
        log::line({"cannot write profile report ", path, ": out of memory"});
    }
}

}  // namespace gometrics::agent
