// Raw samples to pprof profiles; see profile_build.h.
#include "profile_build.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace gometrics::cli {

namespace {


int64_t saturate(double v) { return v >= 0x1.0p63 ? INT64_MAX : static_cast<int64_t>(v); }
int64_t saturate(uint64_t v) { return v > uint64_t{INT64_MAX} ? INT64_MAX : static_cast<int64_t>(v); }

pprof::Sample sample(const ProfileStack& s, std::vector<int64_t> values) {
    return {s.pcs, std::move(values)};
}

void add_heap_samples(pprof::Profile& out, const Profile& raw) {
    for (const ProfileStack& s : raw.stacks) {
        if (s.kind != ProfileStack::kHeap) continue;
        // A free is only ever counted for an object counted as allocated;
        // clamp anyway so a torn read cannot go negative.
        const uint64_t inuse_objects = s.alloc_objects - std::min(s.free_objects, s.alloc_objects);
        const uint64_t inuse_bytes = s.alloc_bytes - std::min(s.free_bytes, s.alloc_bytes);
        const auto [alloc_n, alloc_b] = scale_heap_sample(s.alloc_objects, s.alloc_bytes, raw.heap_rate);
        const auto [inuse_n, inuse_b] = scale_heap_sample(inuse_objects, inuse_bytes, raw.heap_rate);
        out.samples.push_back(sample(s, {alloc_n, alloc_b, inuse_n, inuse_b}));
    }
}

// One contention in `fraction` was sampled: each stands for `fraction`
// (Go scales its mutex profile the same way).
void add_mutex_samples(pprof::Profile& out, const Profile& raw) {
    const double f = static_cast<double>(raw.mutex_fraction);
    for (const ProfileStack& s : raw.stacks) {
        if (s.kind != ProfileStack::kMutex) continue;
        out.samples.push_back(sample(s, {saturate(static_cast<double>(s.contentions) * f),
                                         saturate(static_cast<double>(s.delay_ns) * f)}));
    }
}

template <class T>
T field(const nlohmann::json& j, const char* name) {
    if (!j.contains(name)) throw std::runtime_error(fmt::format("no \"{}\"", name));
    return j.at(name).get<T>();
}

}  // namespace

std::pair<int64_t, int64_t> scale_heap_sample(uint64_t count, uint64_t bytes, uint64_t rate) {
    if (count == 0 || bytes == 0) return {0, 0};
    if (rate <= 1) return {saturate(count), saturate(bytes)};
    const double avg = static_cast<double>(bytes) / static_cast<double>(count);
    // -expm1(-x) is 1 - exp(-x) without cancellation for objects far below the rate.
    const double scale = 1 / -std::expm1(-avg / static_cast<double>(rate));
    return {saturate(static_cast<double>(count) * scale), saturate(static_cast<double>(bytes) * scale)};
}

Result<pprof::Profile> build_profile(const Profile& raw, ProfileKind kind, const ProfileSource& source) {
    pprof::Profile out;
    out.mappings = source.mappings;
    out.time_nanos = saturate(raw.time_ns);
    if (source.start_time_ns != 0 && raw.time_ns > source.start_time_ns)
        out.duration_nanos = saturate(raw.time_ns - source.start_time_ns);
    out.comments.push_back(fmt::format("gometrics {} profile of process {}", profile_kind_name(kind), source.pid));
    if (raw.dropped_samples)
        out.comments.push_back(fmt::format("{} samples dropped: the stack table was full (GOMETRICS_PROFILE_MAX_STACKS)",
                                           raw.dropped_samples));
    if (kind == ProfileKind::Mutex) {
        if (raw.mutex_fraction == 0)
            return Error{fmt::format(
                "process {} does not sample lock contention (GOMETRICS_MUTEX_PROFILE_FRACTION=0)", source.pid)};
        out.sample_types = pprof::mutex_sample_types();
        // As Go's mutex profile: the values are already scaled, period 1.
        out.period_type = {"contentions", "count"};
        out.period = 1;
        add_mutex_samples(out, raw);
        return out;
    }
    if (raw.heap_rate == 0)
        return Error{
            fmt::format("process {} does not sample allocations (GOMETRICS_PROFILE_RATE=0)", source.pid)};
    out.sample_types = pprof::heap_sample_types();
    out.period_type = {"space", "bytes"};
    out.period = saturate(raw.heap_rate);
    // Go leaves the heap profile's default to pprof (the last type, inuse_space).
    if (kind == ProfileKind::Allocs) out.default_sample_type = "alloc_space";
    if (raw.untracked_frees)
        out.comments.push_back(fmt::format(
            "{} sampled objects were freed untracked: in-use values may be high by as many samples",
            raw.untracked_frees));
    // C++ allocations enter through operator new: pprof hides it and what it
    // calls, so the function that asked for the memory is the leaf, as Go
    // hides runtime.mallocgc. Mangled and demangled spellings (pprof matches
    // the whole name, after its own demangling, without the parameters).
    out.drop_frames = "operator new.*|_Zn[wa]m.*";
    add_heap_samples(out, raw);
    return out;
}

Result<ProfileReport> parse_profile_report(std::string_view text) {
    ProfileReport r;
    try {
        const auto j = nlohmann::json::parse(text);
        if (!j.is_object() || j.value("format", "") != "gometrics-profile-report")
            return Error{"not a gometrics profile report (GOMETRICS_PROFILE_REPORT)"};
        if (field<int>(j, "version") != 1)
            return Error{
                fmt::format("profile report version {} is not supported (expected 1)", field<int>(j, "version"))};
        r.source.pid = field<int>(j, "pid");
        r.source.start_time_ns = field<uint64_t>(j, "start_time_ns");
        r.profile.time_ns = field<uint64_t>(j, "time_ns");
        r.profile.heap_rate = field<uint64_t>(j, "heap_rate");
        r.profile.mutex_fraction = field<uint64_t>(j, "mutex_fraction");
        r.profile.dropped_samples = field<uint64_t>(j, "dropped_samples");
        r.profile.untracked_frees = field<uint64_t>(j, "untracked_frees");
        r.exe = field<std::string>(j, "exe");
        for (const auto& s : j.at("stacks")) {
            ProfileStack st;
            const auto kind = field<std::string>(s, "kind");
            if (kind != "heap" && kind != "mutex") throw std::runtime_error("stack of unknown kind \"" + kind + "\"");
            st.kind = kind == "heap" ? ProfileStack::kHeap : ProfileStack::kMutex;
            st.pcs = field<std::vector<uint64_t>>(s, "pcs");
            st.alloc_objects = field<uint64_t>(s, "alloc_objects");
            st.alloc_bytes = field<uint64_t>(s, "alloc_bytes");
            st.free_objects = field<uint64_t>(s, "free_objects");
            st.free_bytes = field<uint64_t>(s, "free_bytes");
            st.contentions = field<uint64_t>(s, "contentions");
            st.delay_ns = field<uint64_t>(s, "delay_ns");
            r.profile.stacks.push_back(std::move(st));
        }
        r.source.mappings = pprof::parse_mappings(field<std::vector<std::string>>(j, "maps"), r.exe);
    } catch (const std::exception& e) {
        return Error{fmt::format("corrupt profile report: {}", e.what())};
    }
    return r;
}

}  // namespace gometrics::cli
