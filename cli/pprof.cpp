// The profile model's helpers; see pprof.h.
#include "pprof.h"

#include <fmt/format.h>

namespace gometrics::pprof {

std::vector<ValueType> heap_sample_types() {
    return {{"alloc_objects", "count"}, {"alloc_space", "bytes"}, {"inuse_objects", "count"}, {"inuse_space", "bytes"}};
}

std::vector<ValueType> mutex_sample_types() { return {{"contentions", "count"}, {"delay", "nanoseconds"}}; }

std::optional<std::size_t> find_sample_type(const Profile& profile, std::string_view type) {
    for (std::size_t i = 0; i < profile.sample_types.size(); ++i)
        if (profile.sample_types[i].type == type) return i;
    return std::nullopt;
}

// Linear: a process maps a few hundred files at most.
const Mapping* find_mapping(const std::vector<Mapping>& mappings, uint64_t address) {
    for (const Mapping& m : mappings)
        if (address >= m.start && address < m.limit) return &m;
    return nullptr;
}

Status check_values(const Profile& profile) {
    for (std::size_t i = 0; i < profile.samples.size(); ++i) {
        if (profile.samples[i].values.size() != profile.sample_types.size())
            return Error{fmt::format("sample {} has {} values for {} sample types", i,
                                 profile.samples[i].values.size(), profile.sample_types.size())};
    }
    return Ok{};
}

}  // namespace gometrics::pprof
