// From the agent's raw samples (the segment's profile region, or a
// GOMETRICS_PROFILE_REPORT file) to a pprof profile as Go's runtime/pprof
// writes it: same sample types, same scaling, same period.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pprof.h"
#include "profile_kind.h"
#include "reader.h"

namespace gometrics::cli {

// Go's scaleHeapSample: a sampled stack of `count` objects totalling `bytes`,
// taken with mean `rate` bytes between samples, stands for count * scale
// objects and bytes * scale bytes, where scale = 1 / (1 - exp(-avg / rate))
// undoes the chance 1 - exp(-avg / rate) that an object of the average size
// is sampled. Returns {0, 0} for an empty sample, the input for rate <= 1.
std::pair<int64_t, int64_t> scale_heap_sample(uint64_t count, uint64_t bytes, uint64_t rate);

// What the conversion needs beside the samples.
struct ProfileSource {
    int pid = 0;
    uint64_t start_time_ns = 0;  // when the agent started: the profile's duration runs from here
    std::vector<pprof::Mapping> mappings;
};

// The pprof profile of `kind`, values scaled; fails with one line when the
// process did not sample that kind.
Result<pprof::Profile> build_profile(const Profile& raw, ProfileKind kind, const ProfileSource& source);

// A GOMETRICS_PROFILE_REPORT file, parsed and checked.
struct ProfileReport {
    Profile profile;  // as Reader::ReadProfile would have returned it
    ProfileSource source;
    std::string exe;
};
Result<ProfileReport> parse_profile_report(std::string_view json);

}  // namespace gometrics::cli
