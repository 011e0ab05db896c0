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
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "agent.h"
#include "clocks.h"
#include "layout.h"
#include "log.h"
#include "profile.h"
#include "text_writer.h"

namespace gometrics::agent {

namespace {

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
void append_maps(TextWriter& out, const std::string& maps) {
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
        out.text(first ? "\n  " : ",\n  ").json_string(line);
        first = false;
    }
}

void append_stacks(TextWriter& out, const layout::ProfileHeader& h, const unsigned char* records) {
    const char* sep = "";
    for (uint64_t i = 0; i < h.stack_count; ++i) {
        const unsigned char* rec = records + i * h.record_size;
        layout::StackRecord r;
        std::memcpy(&r, rec, sizeof r);
        if (r.kind != layout::kStackHeap && r.kind != layout::kStackMutex) continue;  // unused record
        out.format("{}\n  {{\"kind\": \"{}\", \"pcs\": [", sep, r.kind == layout::kStackHeap ? "heap" : "mutex");
        for (uint32_t d = 0; d < r.depth && d < h.max_depth; ++d) {
            uint64_t pc;
            std::memcpy(&pc, rec + sizeof r + d * sizeof pc, sizeof pc);
            out.format("{}{}", d ? ", " : "", pc);
        }
        out.format("], \"alloc_objects\": {}, \"alloc_bytes\": {}, \"free_objects\": {}, \"free_bytes\": {}, "
                   "\"contentions\": {}, \"delay_ns\": {}}}",
                   r.alloc_objects, r.alloc_bytes, r.free_objects, r.free_bytes, r.contentions, r.delay_ns);
        sep = ",";
    }
}

bool write_all(const std::string& path, std::string_view out) {
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

}  // namespace

void write_profile_report(const char* path) noexcept {
    try {
        std::string final_path = path;
        for (size_t at; (at = final_path.find("%p")) != std::string::npos;)
            final_path.replace(at, 2, std::to_string(getpid()));
        // A private copy of the region; all zero (rates 0, no stacks) when
        // profiling is off, which the CLI reports as such.
        std::vector<uint64_t> region((std::max(profile::region_bytes(), sizeof(layout::ProfileHeader)) + 7) / 8);
        profile::publish(region.data(), true);  // private memory: nothing to reserve
        layout::ProfileHeader h;
        std::memcpy(&h, region.data(), sizeof h);

        const std::string maps = read_file("/proc/self/maps");
        // Bounds: a pc is at most 22 characters with its separator, an escaped character 6.
        const size_t cap = 1024 + 6 * 4096 + h.stack_count * (320 + size_t{h.max_depth} * 22) + 6 * maps.size();
        void* mem = mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED) {
            log::line({"cannot write profile report ", final_path, ": out of memory"});
            return;
        }
        TextWriter out(static_cast<char*>(mem), cap);
        out.format("{{\"format\": \"gometrics-profile-report\", \"version\": 1, \"pid\": {}, \"time_ns\": {}, "
                   "\"start_time_ns\": {}, \"heap_rate\": {}, \"mutex_fraction\": {}, \"dropped_samples\": {}, "
                   "\"untracked_frees\": {},\n\"exe\": ",
                   getpid(), sys::clock_ns(CLOCK_REALTIME), start_time_ns(), h.heap_rate, h.mutex_fraction, h.dropped_samples,
                   h.untracked_frees);
        char exe[4096];
        const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe);
        out.json_string(std::string_view(exe, n > 0 && size_t(n) < sizeof exe ? size_t(n) : 0));
        out.text(",\n\"stacks\": [");
        append_stacks(out, h, reinterpret_cast<const unsigned char*>(region.data() + sizeof h / 8));
        out.text("],\n\"maps\": [");
        append_maps(out, maps);
        out.text("]}\n");
        const bool written = !out.full() && write_all(final_path, out.view());
        munmap(mem, cap);
        if (!written) log::line({"cannot write profile report ", final_path});
    } catch (...) {
        log::line({"cannot write profile report ", path, ": out of memory"});
    }
}

}  // namespace gometrics::agent
