// The cgroup finder and limit parsers; see cgroup.h.
#include "cgroup.h"

#include <cstring>

#include "text.h"

namespace gometrics::sys {

using text::any_line;
using text::has_item;
using text::take_field;
using text::take_u64;

std::optional<CgroupDir> find_cgroup(std::string_view mountinfo, std::string_view self_cgroup,
                                     std::string_view v1_controller) noexcept {
    // mountinfo: "id parent major:minor root mount-point options [optional...] - fstype source super-options"
    struct Mount {
        std::string_view root, point;
    } v2_mount, v1_mount;
    any_line(mountinfo, [&](std::string_view line) {
        const size_t dash = text::find_separator(line);
        if (dash == std::string_view::npos) return false;
        std::string_view after = line.substr(dash + 3), before = line.substr(0, dash);
        const std::string_view fstype = take_field(after);
        take_field(after);
        const std::string_view options = take_field(after);
        take_field(before), take_field(before), take_field(before);
        const Mount m{take_field(before), take_field(before)};
        if (m.root.empty() || m.point.empty()) return false;
        if (fstype == "cgroup2" && v2_mount.point.empty()) v2_mount = m;
        if (fstype == "cgroup" && !v1_controller.empty() && has_item(options, v1_controller)) v1_mount = m;
        return false;
    });
    // /proc/self/cgroup: "hierarchy-id:controllers:path"; cgroup2's is "0::path".
    std::string_view v2_path, v1_path;
    any_line(self_cgroup, [&](std::string_view line) {
        const size_t a = line.find(':'), b = a == line.npos ? a : line.find(':', a + 1);
        if (b == line.npos) return false;
        const std::string_view controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
        if (line.substr(0, a) == "0" && controllers.empty()) v2_path = path;
        if (!v1_controller.empty() && has_item(controllers, v1_controller)) v1_path = path;
        return false;
    });
    const bool v1 = !v1_mount.point.empty() && !v1_path.empty();
    const Mount mount = v1 ? v1_mount : v2_mount;
    std::string_view path = v1 ? v1_path : v2_path;
    if (mount.point.empty() || path.empty()) return std::nullopt;
    if (mount.root != "/" && path.substr(0, mount.root.size()) == mount.root &&
        (path.size() == mount.root.size() || path[mount.root.size()] == '/'))
        path.remove_prefix(mount.root.size());
    if (path == "/") path = {};
    return CgroupDir{mount.point, path, v1};
}

size_t cgroup_file_path(const CgroupDir& dir, std::string_view file, char* out, size_t cap) noexcept {
    const std::string_view parts[] = {dir.mount_point, dir.path, "/", file};
    size_t n = 0;
    for (std::string_view p : parts) {
        if (p.empty()) continue;  // an empty view's data() may be null: no memcpy from it
        if (n + p.size() >= cap) return 0;
        std::memcpy(out + n, p.data(), p.size());
        n += p.size();
    }
    if (n >= cap) return 0;
    out[n] = '\0';
    return n;
}

std::optional<double> parse_cpu_max(std::string_view text) noexcept {
    const std::string_view quota = take_field(text);
    if (quota.empty() || quota == "max") return std::nullopt;
    std::string_view q = quota;
    const auto quota_us = take_u64(q);
    const auto period_us = take_u64(text);
    if (!quota_us || !q.empty() || !period_us || *period_us == 0) return std::nullopt;
    return double(*quota_us) / double(*period_us);
}

std::optional<uint64_t> parse_memory_limit(std::string_view text) noexcept {
    if (text.empty() || text[0] < '0' || text[0] > '9') return std::nullopt;  // "max"
    const auto v = take_u64(text);
    if (!v || *v >= 0x7ffffffffffff000ULL) return std::nullopt;  // v1's LONG_MAX rounded to a page
    return v;
}

}  // namespace gometrics::sys
