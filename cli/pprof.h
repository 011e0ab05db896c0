// pprof profiles for the CLI: an in-memory model (pprof.cpp), /proc/PID/maps
// reading (proc_maps.cpp, build IDs from elf_file.h), a gzip'd profile.proto
// writer (pprof_encode.cpp, on proto_wire.h), a libdwfl symbolizer
// (symbolizer.cpp) and a text renderer (pprof_text.cpp).
// Field numbers follow github.com/google/pprof/proto/profile.proto.
//
// Addresses: a stack holds return addresses as an unwinder reports them
// (backtrace(), libunwind, frame pointers); each points just after its call
// instruction. pprof does not adjust the addresses of a profile.proto (only
// its legacy text parsers subtract 1), and Go's own runtime writes call-site
// PCs (return address - 1). So the writer and `symbolize` use call_site(addr)
// for every frame, which keeps the line on the call and the function right
// when the call is the last instruction of a noreturn path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto_wire.h"
#include "result.h"

struct Dwfl;  // elfutils; kept out of this header so users need no libdw headers

namespace gometrics::pprof {

// Library code reports unreadable files as the reader library's Result
// (a value or a one-line Error) and never throws for them.

struct ValueType {
    std::string type;  // "alloc_space"
    std::string unit;  // "bytes", "count", "nanoseconds"
};

// Go's heap profile types, in Go's order: pprof shows the last one unless
// Profile::default_sample_type names another ("alloc_space" for allocs).
std::vector<ValueType> heap_sample_types();
// Go's mutex profile types: contentions/count, delay/nanoseconds.
std::vector<ValueType> mutex_sample_types();

struct Sample {
    std::vector<uint64_t> stack;  // return addresses, leaf first
    std::vector<int64_t> values;  // one per Profile::sample_types
};

struct Mapping {
    uint64_t start = 0;   // first mapped address
    uint64_t limit = 0;   // one past the last mapped address
    uint64_t offset = 0;  // file offset mapped at `start`
    std::string file;
    std::string build_id;  // GNU build ID, lower-case hex; empty when the file has none
};

// One source position; a location has several when calls were inlined.
struct Frame {
    std::string function;     // demangled
    std::string system_name;  // as in the symbol table (mangled)
    std::string file;         // empty when there is no debug info
    int64_t line = 0;         // 0 when unknown
};

struct Profile {
    std::vector<ValueType> sample_types;
    std::vector<Sample> samples;
    std::vector<Mapping> mappings;  // mappings[0] is the main executable, as pprof assumes
    ValueType period_type;          // e.g. {"space", "bytes"} for heap
    int64_t period = 0;             // events between samples, in period_type's unit
    int64_t time_nanos = 0;         // collection start, ns since the Unix epoch
    int64_t duration_nanos = 0;
    std::vector<std::string> comments;
    std::string drop_frames;          // regexp of frames pprof hides with their callees, e.g. the agent's hooks
    std::string default_sample_type;  // empty: pprof's default (the last type)
    // Filled by symbolize(), keyed by stack address (a return address);
    // innermost inline frame first. When present the writer emits Function
    // and Line records and marks the mapping symbolized, so pprof needs no
    // binaries; otherwise pprof symbolizes from the mapped files.
    std::map<uint64_t, std::vector<Frame>> symbols;
};

// The address inside the call instruction that a return address follows.
constexpr uint64_t call_site(uint64_t return_address) noexcept { return return_address - 1; }

// Index of the sample type called `type`, if any.
std::optional<std::size_t> find_sample_type(const Profile& profile, std::string_view type);

// The mapping containing `address`, if any.
const Mapping* find_mapping(const std::vector<Mapping>& mappings, uint64_t address);

// Fails unless every sample has one value per sample type, as pprof checks
// on reading.
Status check_values(const Profile& profile);

// Executable file mappings of a process with their build IDs, the main
// executable first. Fails only if /proc/PID/maps cannot be read.
Result<std::vector<Mapping>> read_mappings(int pid);

// The same from /proc/PID/maps lines recorded earlier (GOMETRICS_PROFILE_REPORT),
// `exe` first; build IDs are read from the files as they are on disk now.
std::vector<Mapping> parse_mappings(const std::vector<std::string>& maps_lines, std::string_view exe);

// The uncompressed profile.proto message. Fails if a sample's value count
// differs from the number of sample types (pprof rejects such profiles).
Result<std::string> encode(const Profile& profile);

// encode(), gzip'd as pprof expects on disk, written to `path`.
Status write_profile(const Profile& profile, const std::string& path);

// Resolves code addresses to functions, files and lines with elfutils'
// libdwfl (DWARF, then the symbol table). Not thread-safe.
class Symbolizer {
public:
    // The modules a live process has mapped, as dwfl_linux_proc_report sees them.
    static Result<std::unique_ptr<Symbolizer>> for_pid(int pid);
    // The files of a recorded mappings list, for a process that has exited.
    // A file that cannot be loaded adds a warning; it fails only if none can.
    static Result<std::unique_ptr<Symbolizer>> for_mappings(const std::vector<Mapping>& mappings);

    ~Symbolizer();
    Symbolizer(const Symbolizer&) = delete;
    Symbolizer& operator=(const Symbolizer&) = delete;

    // Frames at code address `pc` (a call site, not a return address),
    // innermost inline frame first; empty if nothing is known there.
    const std::vector<Frame>& resolve(uint64_t pc);

    // One line per mapped file that for_mappings could not load.
    const std::vector<std::string>& warnings() const noexcept { return warnings_; }

private:
    struct DwflDeleter {
        void operator()(Dwfl* dwfl) const noexcept;
    };
    explicit Symbolizer(std::unique_ptr<Dwfl, DwflDeleter> dwfl);

    std::unique_ptr<Dwfl, DwflDeleter> dwfl_;
    std::map<uint64_t, std::vector<Frame>> cache_;  // by pc; libdwfl lookups are slow
    std::vector<std::string> warnings_;
};

// Fills profile.symbols for every stack address, resolved at its call site.
void symbolize(Profile& profile, Symbolizer& symbolizer);

// The `top` heaviest stacks by sample type `sample_index`, each with its
// value in human units, its share of the total and its frames as
// "function (file:line)". Uses profile.symbols; other frames print as
// addresses within their mapped file. Fails as encode() does, or if there
// is no such sample type.
Result<std::string> render_text(const Profile& profile, std::size_t sample_index, std::size_t top);

namespace detail {

// gzip (RFC 1952) of `data`, as pprof reads profiles.
Result<std::string> gzip(std::string_view data);

}  // namespace detail

}  // namespace gometrics::pprof
