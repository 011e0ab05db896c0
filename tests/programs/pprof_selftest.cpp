// Writes a heap profile of its own stacks, for checking the pprof writer
// against `go tool pprof`: alpha_alloc_site records 3x the bytes of
// beta_alloc_site, so alloc_space must show alpha ~75% and beta ~25%.
//
//   pprof_selftest OUT.pb.gz               pprof symbolizes from the binary
//   pprof_selftest OUT.pb.gz --symbolize   symbols written into the profile
//
// Also prints render_text() of the profile to stdout.
#include <chrono>
#include <cstdio>
#include <execinfo.h>
#include <string>
#include <string_view>
#include <unistd.h>

#include "pprof.h"

namespace pprof = gometrics::pprof;

namespace {

constexpr int kMaxDepth = 64;

// One sample per call site, valued as `objects` allocations of 1 KiB.
pprof::Sample make_sample(void* const* frames, int depth, int64_t objects) {
    pprof::Sample s;
    for (int i = 0; i < depth; ++i) s.stack.push_back(reinterpret_cast<uint64_t>(frames[i]));
    const int64_t bytes = objects * 1024;
    s.values = {objects, bytes, objects, bytes};  // heap_sample_types() order
    return s;
}

int fail(const std::string& message) {
    std::fprintf(stderr, "pprof_selftest: %s\n", message.c_str());
    return 1;
}

}  // namespace

// Each site captures its own stack, as the agent's allocation hook will:
// the leaf frame is the return address of backtrace() inside the site.
// External linkage on purpose: `go tool pprof` symbolizes C++ with its own
// Go-oriented DWARF reader, which takes DW_AT_name and does not follow
// DW_AT_specification, and GCC names anonymous-namespace definitions only
// that way.
[[gnu::noinline]] pprof::Sample alpha_alloc_site() {
    void* frames[kMaxDepth];
    const int depth = backtrace(frames, kMaxDepth);
    return make_sample(frames, depth, 3);
}

[[gnu::noinline]] pprof::Sample beta_alloc_site() {
    void* frames[kMaxDepth];
    const int depth = backtrace(frames, kMaxDepth);
    return make_sample(frames, depth, 1);
}

int main(int argc, char** argv) {
    const bool presymbolize = argc == 3 && std::string_view(argv[2]) == "--symbolize";
    if (argc != 2 && !presymbolize) {
        std::fprintf(stderr, "usage: %s OUT.pb.gz [--symbolize]\n", argv[0]);
        return 2;
    }
    pprof::Profile profile;
    profile.sample_types = pprof::heap_sample_types();
    profile.default_sample_type = "alloc_space";
    profile.period_type = {"space", "bytes"};
    profile.period = 1;
    profile.time_nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
    profile.samples = {alpha_alloc_site(), beta_alloc_site()};

    auto mappings = pprof::read_mappings(getpid());
    if (!mappings) return fail(mappings.error().message);
    profile.mappings = std::move(*mappings);

    if (presymbolize) {
        auto symbolizer = pprof::Symbolizer::for_pid(getpid());
        if (!symbolizer) return fail(symbolizer.error().message);
        pprof::symbolize(profile, **symbolizer);
    }
    if (auto written = pprof::write_profile(profile, argv[1]); !written) return fail(written.error().message);

    auto text = pprof::render_text(profile, *pprof::find_sample_type(profile, "alloc_space"), 10);
    if (!text) return fail(text.error().message);
    std::fputs(text->c_str(), stdout);
    return 0;
}
