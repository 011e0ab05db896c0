// The text rendering of a profile: its heaviest stacks; see pprof.h.
#include <algorithm>
#include <iterator>
#include <map>

#include <fmt/format.h>

#include "pprof.h"
#include "units.h"

namespace gometrics::pprof {

namespace {

// In the CLI's units; pprof counts time in nanoseconds, Go's metrics in seconds.
std::string human_value(int64_t value, const std::string& unit) {
    const auto v = static_cast<double>(value);
    if (unit == "nanoseconds") return cli::human(v / 1e9, "seconds");
    if (unit == "bytes" || unit == "count" || unit.empty()) return cli::human(v, unit);
    return fmt::format("{} {}", cli::human(v, unit), unit);
}

// "function (file:line)" per frame, or the address and where it is mapped.
void render_frames(std::string& out, const Profile& profile, uint64_t address) {
    if (auto frames = profile.symbols.find(address); frames != profile.symbols.end()) {
        for (const Frame& f : frames->second) {
            if (f.file.empty()) fmt::format_to(std::back_inserter(out), "      {}\n", f.function);
            else fmt::format_to(std::back_inserter(out), "      {} ({}:{})\n", f.function, f.file, f.line);
        }
        return;
    }
    if (const Mapping* m = find_mapping(profile.mappings, address))
        fmt::format_to(std::back_inserter(out), "      {:#x} ({}+{:#x})\n", address, m->file,
                       address - m->start + m->offset);
    else fmt::format_to(std::back_inserter(out), "      {:#x}\n", address);
}

}  // namespace

Result<std::string> render_text(const Profile& profile, std::size_t sample_index, std::size_t top) {
    if (sample_index >= profile.sample_types.size())
        return Error{fmt::format("no sample type #{}: the profile has {}", sample_index,
                                 profile.sample_types.size())};
    if (auto checked = check_values(profile); !checked) return checked.error();
    const ValueType& type = profile.sample_types[sample_index];
    // The same stack can be sampled more than once.
    std::map<std::vector<uint64_t>, int64_t> by_stack;
    int64_t total = 0;
    for (const Sample& s : profile.samples) {
        by_stack[s.stack] += s.values[sample_index];
        total += s.values[sample_index];
    }
    std::vector<std::pair<const std::vector<uint64_t>*, int64_t>> ranked;
    for (const auto& [stack, value] : by_stack)
        if (value != 0) ranked.emplace_back(&stack, value);
    std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    ranked.resize(std::min(top, ranked.size()));

    std::string out = fmt::format("{}: total {} in {} stacks, top {}\n", type.type, human_value(total, type.unit),
                                  by_stack.size(), ranked.size());
    for (const auto& [stack, value] : ranked) {
        const double percent = total != 0 ? 100.0 * static_cast<double>(value) / static_cast<double>(total) : 0;
        fmt::format_to(std::back_inserter(out), "{:>12} {:5.1f}%\n", human_value(value, type.unit), percent);
        for (uint64_t address : *stack) render_frames(out, profile, address);
    }
    return out;
}

}  // namespace gometrics::pprof
