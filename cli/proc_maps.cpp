// Executable file mappings of a process, from /proc/PID/maps or recorded
// maps lines, with their build IDs; see pprof.h.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <unordered_map>

#include <fmt/format.h>

#include "elf_file.h"
#include "pprof.h"
#include "proc.h"

namespace gometrics::pprof {

namespace {

// An executable file mapping from one maps line
// ("start-limit perms offset dev inode   path"); nullopt for any other line.
std::optional<Mapping> parse_executable_mapping(const std::string& line) {
    const auto l = sys::parse_maps_line(line);
    if (!l || l->path.empty() || l->path.front() != '/' || l->perms[2] != 'x') return std::nullopt;
    Mapping m;
    m.start = l->start;
    m.limit = l->end;
    m.offset = l->offset;
    m.file = std::string(l->path);
    return m;
}

// pprof takes mappings[0] as the main binary (and `pprof BINARY PROFILE`
// replaces its file name), but the executable need not be mapped lowest.
void move_executable_first(std::vector<Mapping>& mappings, std::string_view exe) {
    std::stable_partition(mappings.begin(), mappings.end(), [&](const Mapping& m) { return m.file == exe; });
}

std::string exe_of(int pid) {
    char exe[4096];
    const ssize_t n = readlink(fmt::format("/proc/{}/exe", pid).c_str(), exe, sizeof exe);
    if (n <= 0 || static_cast<std::size_t>(n) == sizeof exe) return {};
    return std::string(exe, static_cast<std::size_t>(n));
}

// Executable file mappings from maps lines, with their build IDs.
class MappingsBuilder {
public:
    void add(const std::string& line) {
        auto m = parse_executable_mapping(line);
        if (!m) return;
        auto [it, inserted] = build_ids_.try_emplace(m->file);
        if (inserted) it->second = read_build_id(m->file);
        m->build_id = it->second;
        mappings_.push_back(std::move(*m));
    }
    std::vector<Mapping> finish(std::string_view exe) {
        move_executable_first(mappings_, exe);
        return std::move(mappings_);
    }

private:
    std::vector<Mapping> mappings_;
    std::unordered_map<std::string, std::string> build_ids_;  // a file can have several executable mappings
};

}  // namespace

Result<std::vector<Mapping>> read_mappings(int pid) {
    const std::string path = fmt::format("/proc/{}/maps", pid);
    std::ifstream maps(path);
    if (!maps) return Error{fmt::format("cannot read {}: {}", path, std::strerror(errno))};
    MappingsBuilder builder;
    for (std::string line; std::getline(maps, line);) builder.add(line);
    return builder.finish(exe_of(pid));
}

std::vector<Mapping> parse_mappings(const std::vector<std::string>& maps_lines, std::string_view exe) {
    MappingsBuilder builder;
    for (const std::string& line : maps_lines) builder.add(line);
    return builder.finish(exe);
}

}  // namespace gometrics::pprof
