// libFuzzer target: the reader library on arbitrary segment bytes. The bytes
// go into a file on tmpfs (the reader opens a path with O_NOFOLLOW and maps
// it, as it maps /dev/shm), then open_path validates them and ReadAll and
// Read decode whatever passed.
// Any crash, sanitizer report or hang is a bug: the reader trusts nothing.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "reader.h"

namespace {

// One file for the whole run, rewritten per input, removed at exit.
const std::string& segment_path() {
    static const std::string path = "/dev/shm/gometrics-fuzz-reader." + std::to_string(getpid());
    return path;
}

int segment_fd() {
    static const int fd = [] {
        const int f = open(segment_path().c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (f < 0) std::abort();
        std::atexit([] { unlink(segment_path().c_str()); });
        return f;
    }();
    return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const int fd = segment_fd();
    if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != static_cast<ssize_t>(size))) std::abort();
    auto r = gometrics::Reader::open_path(segment_path());
    if (!r) return 0;
    const gometrics::ReadOptions once{0, 3};  // no fresh request, few seqlock retries
    if (auto s = r->ReadAll(once); s && s->values.size() != r->All().size()) std::abort();
    std::vector<gometrics::Sample> samples;
    for (const auto& d : r->All()) samples.push_back({d.name, {}});
    // A name the segment does not publish reads as Bad (the fuzzer can make
    // a segment publish any fixed name, so check membership first).
    const std::string absent = "/not/published:bytes";
    bool published = false;
    for (const auto& d : r->All()) published = published || d.name == absent;
    samples.push_back({absent, {}});
    if (auto st = r->Read(samples, once); st && !published && samples.back().value.kind != gometrics::ValueKind::Bad)
        std::abort();
    (void)r->state();
    return 0;
}
