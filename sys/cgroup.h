// The process's cgroup and its limits: the one finder, for cgroup v2 and
// cgroup v1's per-controller hierarchies, from /proc/self/mountinfo and
// /proc/self/cgroup. Pure parsers over their text, and a reader on top.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace gometrics::sys {

// A group as this process sees it: the hierarchy's mount point, and the
// group's path below it ("" for the mount's own root). /proc/self/cgroup
// names a group from the hierarchy's root, and a mount may show the
// hierarchy from further down (a container's cgroup namespace or bind
// mount: mountinfo's root field): that root is taken off the path.
struct CgroupDir {
    std::string_view mount_point;
    std::string_view path;  // "" or "/a/b"
    bool v1;                // a cgroup v1 controller's hierarchy
};

// The group holding the process for `v1_controller` ("memory", say):
// cgroup v1's hierarchy with that controller when one is mounted (there
// the controller is enforced), else the cgroup2 group. An empty
// controller asks for the cgroup2 group only. Views into the texts.
std::optional<CgroupDir> find_cgroup(std::string_view mountinfo, std::string_view self_cgroup,
                                     std::string_view v1_controller) noexcept;

// mount_point + path + "/" + file into out, NUL-terminated; its length, or
// 0 when it does not fit.
size_t cgroup_file_path(const CgroupDir& dir, std::string_view file, char* out, size_t cap) noexcept;

// cpu.max ("$MAX $PERIOD", MAX a quota in microseconds or "max") in CPUs;
// nullopt for no limit.
std::optional<double> parse_cpu_max(std::string_view text) noexcept;
// memory.max (v2: bytes or "max") or memory.limit_in_bytes (v1: bytes, with
// about 2^63 rounded down to a page for no limit); nullopt for no limit.
std::optional<uint64_t> parse_memory_limit(std::string_view text) noexcept;

}  // namespace gometrics::sys
