// pprof profiles: maps reading, profile.proto encoding, symbolization, text.
#include "cli/pprof.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cxxabi.h>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <set>
#include <tuple>
#include <unistd.h>
#include <unordered_map>
#include <utility>

#include <dwarf.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fmt/format.h>
#include <gelf.h>
#include <zlib.h>

#include "cli/units.h"

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

// ---- Protobuf wire format ---------------------------------------------------

namespace detail {

void ProtoWriter::varint(uint64_t value) {
    while (value >= 0x80) {
        out_.push_back(static_cast<char>((value & 0x7f) | 0x80));
        value >>= 7;
    }
    out_.push_back(static_cast<char>(value));
}

void ProtoWriter::tag(int field, WireType type) {
    varint(static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(type));
}

void ProtoWriter::uint64_field(int field, uint64_t value) {
    if (value == 0) return;
    tag(field, WireType::Varint);
    varint(value);
}

// int64 is a plain two's-complement varint (not zigzag, which is sint64).
void ProtoWriter::int64_field(int field, int64_t value) { uint64_field(field, static_cast<uint64_t>(value)); }

void ProtoWriter::bool_field(int field, bool value) { uint64_field(field, value ? 1 : 0); }

void ProtoWriter::bytes_field(int field, std::string_view bytes) {
    tag(field, WireType::LengthDelimited);
    varint(bytes.size());
    out_.append(bytes);
}

void ProtoWriter::message_field(int field, const ProtoWriter& message) { bytes_field(field, message.bytes()); }

void ProtoWriter::packed_uint64_field(int field, const std::vector<uint64_t>& values) {
    if (values.empty()) return;
    ProtoWriter packed;
    for (uint64_t v : values) packed.varint(v);
    bytes_field(field, packed.bytes());
}

void ProtoWriter::packed_int64_field(int field, const std::vector<int64_t>& values) {
    packed_uint64_field(field, std::vector<uint64_t>(values.begin(), values.end()));
}

void ProtoWriter::fixed64(uint64_t value) {
    for (int i = 0; i < 8; ++i) out_ += static_cast<char>(value >> (8 * i) & 0xff);
}

void ProtoWriter::fixed64_field(int field, uint64_t value) {
    if (value == 0) return;
    tag(field, WireType::Fixed64);
    fixed64(value);
}

void ProtoWriter::double_field(int field, double value) {
    tag(field, WireType::Fixed64);
    fixed64(std::bit_cast<uint64_t>(value));
}

void ProtoWriter::sfixed64_field(int field, int64_t value) {
    tag(field, WireType::Fixed64);
    fixed64(static_cast<uint64_t>(value));
}

void ProtoWriter::packed_fixed64_field(int field, const std::vector<uint64_t>& values) {
    if (values.empty()) return;
    ProtoWriter packed;
    for (uint64_t v : values) packed.fixed64(v);
    bytes_field(field, packed.bytes());
}

void ProtoWriter::packed_double_field(int field, const std::vector<double>& values) {
    if (values.empty()) return;
    ProtoWriter packed;
    for (double v : values) packed.fixed64(std::bit_cast<uint64_t>(v));
    bytes_field(field, packed.bytes());
}

Result<std::string> gzip(std::string_view data) {
    z_stream zs{};
    // windowBits 15 + 16 selects the gzip wrapper instead of zlib's.
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return Result<std::string>::fail("gzip: cannot initialise zlib");
    std::string out(deflateBound(&zs, data.size()), '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&zs, Z_FINISH);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) return Result<std::string>::fail(fmt::format("gzip: deflate failed ({})", rc));
    return {std::move(out), {}};
}

}  // namespace detail

namespace {

using detail::ProtoWriter;

// ---- ELF files ----------------------------------------------------------------

// An ELF file opened read-only through libelf.
class ElfFile {
public:
    static Result<std::unique_ptr<ElfFile>> open(const std::string& path) {
        // libelf refuses to work until told which ELF version the caller speaks.
        static const bool initialised = elf_version(EV_CURRENT) != EV_NONE;
        if (!initialised) return fail(path, elf_errmsg(-1));
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return fail(path, std::strerror(errno));
        auto file = std::unique_ptr<ElfFile>(new ElfFile(fd, elf_begin(fd, ELF_C_READ_MMAP, nullptr)));
        if (file->elf_ == nullptr || elf_kind(file->elf_) != ELF_K_ELF) return fail(path, "not an ELF file");
        return {std::move(file), {}};
    }

    ~ElfFile() {
        elf_end(elf_);
        ::close(fd_);
    }
    ElfFile(const ElfFile&) = delete;
    ElfFile& operator=(const ElfFile&) = delete;

    Elf* elf() const noexcept { return elf_; }

private:
    ElfFile(int fd, Elf* elf) : fd_(fd), elf_(elf) {}
    static Result<std::unique_ptr<ElfFile>> fail(const std::string& path, const char* why) {
        return Result<std::unique_ptr<ElfFile>>::fail(fmt::format("cannot read ELF file {}: {}", path, why));
    }

    int fd_;
    Elf* elf_;
};

// The NT_GNU_BUILD_ID note as hex, or "" if the file has none or is unreadable
// (pprof then matches the binary by file name alone).
std::string read_build_id(const std::string& path) {
    auto file = ElfFile::open(path);
    const void* id = nullptr;
    const ssize_t size = file.ok() ? dwelf_elf_gnu_build_id(file.value->elf(), &id) : 0;
    std::string hex;
    for (ssize_t i = 0; i < size; ++i) hex += fmt::format("{:02x}", static_cast<const unsigned char*>(id)[i]);
    return hex;
}

// The load bias that puts `mapping` where the process had it: its file offset
// lies in an executable PT_LOAD segment whose p_vaddr the bias shifts.
Result<uint64_t> load_bias(const ElfFile& file, const Mapping& mapping) {
    std::size_t count = 0;
    if (elf_getphdrnum(file.elf(), &count) != 0)
        return Result<uint64_t>::fail(fmt::format("cannot read program headers of {}", mapping.file));
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    for (std::size_t i = 0; i < count; ++i) {
        GElf_Phdr ph;
        if (gelf_getphdr(file.elf(), static_cast<int>(i), &ph) == nullptr) continue;
        if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
        // The kernel maps whole pages, so the mapping may start before p_offset.
        if (mapping.offset < (ph.p_offset & ~(page - 1)) || mapping.offset >= ph.p_offset + ph.p_filesz) continue;
        return {mapping.start - (ph.p_vaddr - ph.p_offset + mapping.offset), {}};
    }
    return Result<uint64_t>::fail(
        fmt::format("{} has no executable segment at offset {:#x}", mapping.file, mapping.offset));
}

// ---- /proc/PID/maps -------------------------------------------------------------

// An executable file mapping from one maps line
// ("start-limit perms offset dev inode   path"); nullopt for any other line.
std::optional<Mapping> parse_executable_mapping(const std::string& line) {
    Mapping m;
    char perms[5] = {};
    int path_at = 0;
    if (std::sscanf(line.c_str(), "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %*s %*s %n", &m.start, &m.limit, perms,
                    &m.offset, &path_at) != 4)
        return std::nullopt;
    const auto path = static_cast<std::size_t>(path_at);
    if (path == 0 || line[path] != '/' || perms[2] != 'x') return std::nullopt;
    m.file = line.substr(path);
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

// The mapping containing `address`. Linear: a process maps a few hundred
// files at most.
const Mapping* find_mapping(const std::vector<Mapping>& mappings, uint64_t address) {
    for (const Mapping& m : mappings)
        if (address >= m.start && address < m.limit) return &m;
    return nullptr;
}

}  // namespace

Result<std::vector<Mapping>> read_mappings(int pid) {
    const std::string path = fmt::format("/proc/{}/maps", pid);
    std::ifstream maps(path);
    if (!maps) return Result<std::vector<Mapping>>::fail(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    MappingsBuilder builder;
    for (std::string line; std::getline(maps, line);) builder.add(line);
    return {builder.finish(exe_of(pid)), {}};
}

std::vector<Mapping> parse_mappings(const std::vector<std::string>& maps_lines, std::string_view exe) {
    MappingsBuilder builder;
    for (const std::string& line : maps_lines) builder.add(line);
    return builder.finish(exe);
}

// ---- profile.proto encoding -------------------------------------------------------

namespace {

// Field numbers from profile.proto, one struct per message.
struct ProfileField {
    enum : int {
        kSampleType = 1, kSample = 2, kMapping = 3, kLocation = 4, kFunction = 5, kStringTable = 6,
        kDropFrames = 7, kTimeNanos = 9, kDurationNanos = 10, kPeriodType = 11, kPeriod = 12, kComment = 13,
        kDefaultSampleType = 14,
    };
};
struct ValueTypeField {
    enum : int { kType = 1, kUnit = 2 };
};
struct SampleField {
    enum : int { kLocationId = 1, kValue = 2 };
};
struct MappingField {
    enum : int {
        kId = 1, kMemoryStart = 2, kMemoryLimit = 3, kFileOffset = 4, kFilename = 5, kBuildId = 6,
        kHasFunctions = 7, kHasFilenames = 8, kHasLineNumbers = 9, kHasInlineFrames = 10,
    };
};
struct LocationField {
    enum : int { kId = 1, kMappingId = 2, kAddress = 3, kLine = 4 };
};
struct LineField {
    enum : int { kFunctionId = 1, kLine = 2 };
};
struct FunctionField {
    enum : int { kId = 1, kName = 2, kSystemName = 3, kFilename = 4 };
};

// string_table: every string once, "" at index 0 as profile.proto requires.
class StringTable {
public:
    StringTable() { index(""); }

    int64_t index(const std::string& s) {
        auto [it, inserted] = ids_.try_emplace(s, static_cast<int64_t>(strings_.size()));
        if (inserted) strings_.push_back(s);
        return it->second;
    }
    const std::vector<std::string>& strings() const noexcept { return strings_; }

private:
    std::vector<std::string> strings_;
    std::unordered_map<std::string, int64_t> ids_;
};

// What pprof is told about a mapping's symbols.
struct MappingSymbols {
    bool functions = false, filenames = false, line_numbers = false;
};

// Builds the message in field order. Ids are 1-based positions: locations
// in order of first use by a sample, functions in order of first use by a
// location, mappings in Profile::mappings order.
class ProfileEncoder {
public:
    explicit ProfileEncoder(const Profile& profile)
        : profile_(profile), mapping_symbols_(profile.mappings.size()) {}

    std::string encode() {
        ProtoWriter head;
        for (const ValueType& t : profile_.sample_types) head.message_field(ProfileField::kSampleType, value_type(t));
        for (const Sample& s : profile_.samples) head.message_field(ProfileField::kSample, sample(s));
        // Samples assign the location ids and note which mappings have symbols.
        for (std::size_t i = 0; i < profile_.mappings.size(); ++i)
            head.message_field(ProfileField::kMapping, mapping(i));
        // Locations assign the function ids.
        for (std::size_t i = 0; i < locations_.size(); ++i) head.message_field(ProfileField::kLocation, location(i));
        for (std::size_t i = 0; i < functions_.size(); ++i) head.message_field(ProfileField::kFunction, function(i));
        // The trailing fields intern strings too, so the table is written last
        // and spliced in at its place in field order.
        const ProtoWriter tail = trailing_fields();
        ProtoWriter table;
        for (const std::string& s : strings_.strings()) table.bytes_field(ProfileField::kStringTable, s);
        return head.bytes() + table.bytes() + tail.bytes();
    }

private:
    ProtoWriter value_type(const ValueType& t) {
        ProtoWriter w;
        w.int64_field(ValueTypeField::kType, strings_.index(t.type));
        w.int64_field(ValueTypeField::kUnit, strings_.index(t.unit));
        return w;
    }

    ProtoWriter sample(const Sample& s) {
        std::vector<uint64_t> ids;
        ids.reserve(s.stack.size());
        for (uint64_t address : s.stack) ids.push_back(location_id(address));
        ProtoWriter w;
        w.packed_uint64_field(SampleField::kLocationId, ids);
        w.packed_int64_field(SampleField::kValue, s.values);
        return w;
    }

    uint64_t location_id(uint64_t address) {
        auto [it, inserted] = location_ids_.try_emplace(address, locations_.size() + 1);
        if (inserted) {
            locations_.push_back(address);
            note_symbols(address);
        }
        return it->second;
    }

    void note_symbols(uint64_t address) {
        const auto frames = profile_.symbols.find(address);
        const Mapping* m = find_mapping(profile_.mappings, address);
        if (frames == profile_.symbols.end() || m == nullptr) return;
        MappingSymbols& has = mapping_symbols_[static_cast<std::size_t>(m - profile_.mappings.data())];
        for (const Frame& f : frames->second) {
            has.functions |= !f.function.empty();
            has.filenames |= !f.file.empty();
            has.line_numbers |= f.line != 0;
        }
    }

    ProtoWriter mapping(std::size_t i) {
        const Mapping& m = profile_.mappings[i];
        const MappingSymbols& has = mapping_symbols_[i];
        ProtoWriter w;
        w.uint64_field(MappingField::kId, i + 1);
        w.uint64_field(MappingField::kMemoryStart, m.start);
        w.uint64_field(MappingField::kMemoryLimit, m.limit);
        w.uint64_field(MappingField::kFileOffset, m.offset);
        w.int64_field(MappingField::kFilename, strings_.index(m.file));
        w.int64_field(MappingField::kBuildId, strings_.index(m.build_id));
        // Any of these keeps pprof from symbolizing the mapping again.
        w.bool_field(MappingField::kHasFunctions, has.functions);
        w.bool_field(MappingField::kHasFilenames, has.filenames);
        w.bool_field(MappingField::kHasLineNumbers, has.line_numbers);
        w.bool_field(MappingField::kHasInlineFrames, has.functions);  // symbolize() records whole inline chains
        return w;
    }

    ProtoWriter location(std::size_t i) {
        const uint64_t address = locations_[i];
        const Mapping* m = find_mapping(profile_.mappings, address);
        ProtoWriter w;
        w.uint64_field(LocationField::kId, i + 1);
        w.uint64_field(LocationField::kMappingId, m ? static_cast<uint64_t>(m - profile_.mappings.data()) + 1 : 0);
        w.uint64_field(LocationField::kAddress, call_site(address));
        if (auto frames = profile_.symbols.find(address); frames != profile_.symbols.end()) {
            for (const Frame& f : frames->second) {
                ProtoWriter line;
                line.uint64_field(LineField::kFunctionId, function_id(f));
                line.int64_field(LineField::kLine, f.line);
                w.message_field(LocationField::kLine, line);
            }
        }
        return w;
    }

    uint64_t function_id(const Frame& f) {
        auto [it, inserted] =
            function_ids_.try_emplace(std::tie(f.system_name, f.file), functions_.size() + 1);
        if (inserted) functions_.push_back(&f);
        return it->second;
    }

    ProtoWriter function(std::size_t i) {
        const Frame& f = *functions_[i];
        ProtoWriter w;
        w.uint64_field(FunctionField::kId, i + 1);
        // Both names as the symbol table spells them, as pprof's own
        // symbolizer records them: pprof then demangles per its
        // -symbolize=demangle option (it skips a name that differs).
        const int64_t name = strings_.index(f.system_name);
        w.int64_field(FunctionField::kName, name);
        w.int64_field(FunctionField::kSystemName, name);
        w.int64_field(FunctionField::kFilename, strings_.index(f.file));
        return w;
    }

    ProtoWriter trailing_fields() {
        ProtoWriter w;
        w.int64_field(ProfileField::kDropFrames, strings_.index(profile_.drop_frames));
        w.int64_field(ProfileField::kTimeNanos, profile_.time_nanos);
        w.int64_field(ProfileField::kDurationNanos, profile_.duration_nanos);
        if (!profile_.period_type.type.empty())
            w.message_field(ProfileField::kPeriodType, value_type(profile_.period_type));
        w.int64_field(ProfileField::kPeriod, profile_.period);
        std::vector<int64_t> comments;
        for (const std::string& c : profile_.comments) comments.push_back(strings_.index(c));
        w.packed_int64_field(ProfileField::kComment, comments);
        w.int64_field(ProfileField::kDefaultSampleType, strings_.index(profile_.default_sample_type));
        return w;
    }

    const Profile& profile_;
    StringTable strings_;
    std::unordered_map<uint64_t, uint64_t> location_ids_;
    std::vector<uint64_t> locations_;  // stack addresses, by id - 1
    // Keys and pointers refer into profile_.symbols, which outlives the encoder.
    std::map<std::tuple<const std::string&, const std::string&>, uint64_t> function_ids_;  // (name, file)
    std::vector<const Frame*> functions_;  // by id - 1
    std::vector<MappingSymbols> mapping_symbols_;
};

// Every sample needs one value per sample type, as pprof checks on reading.
Result<> check_values(const Profile& profile) {
    for (std::size_t i = 0; i < profile.samples.size(); ++i) {
        if (profile.samples[i].values.size() != profile.sample_types.size())
            return Result<>::fail(fmt::format("sample {} has {} values for {} sample types", i,
                                              profile.samples[i].values.size(), profile.sample_types.size()));
    }
    return {};
}

}  // namespace

Result<std::string> encode(const Profile& profile) {
    if (auto checked = check_values(profile); !checked.ok()) return Result<std::string>::fail(checked.error);
    return {ProfileEncoder(profile).encode(), {}};
}

Result<> write_profile(const Profile& profile, const std::string& path) {
    auto message = encode(profile);
    if (!message.ok()) return Result<>::fail(message.error);
    auto compressed = detail::gzip(message.value);
    if (!compressed.ok()) return Result<>::fail(compressed.error);
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> out(std::fopen(path.c_str(), "wb"), &std::fclose);
    if (!out) return Result<>::fail(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
    const std::string& bytes = compressed.value;
    if (std::fwrite(bytes.data(), 1, bytes.size(), out.get()) != bytes.size() || std::fclose(out.release()) != 0)
        return Result<>::fail(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
    return {};
}

// ---- Symbolizer -------------------------------------------------------------------

namespace {

// dwfl_linux_proc_find_elf opens the files a live process maps ([vdso] from
// its memory; dwfl_report_elf opens its file itself).
// dwfl_standard_find_debuginfo finds separate debug info: /usr/lib/debug by
// build ID or .gnu_debuglink, and debuginfod servers if DEBUGINFOD_URLS is set.
const Dwfl_Callbacks kCallbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = nullptr,
    .debuginfo_path = nullptr,
};

bool is_mangled(std::string_view name) { return name.substr(0, 2) == "_Z"; }

std::string demangle(const std::string& name) {
    // Only Itanium-mangled names: __cxa_demangle also decodes type names, so
    // a C function called "i" would come back as "int".
    if (!is_mangled(name)) return name;
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status),
                                               &std::free);
    return status == 0 && out ? out.get() : name;
}

struct SourcePos {
    std::string file;
    int64_t line = 0;
};

Frame make_frame(const std::string& system_name, SourcePos pos) {
    return {demangle(system_name), system_name, std::move(pos.file), pos.line};
}

// The mangled name when DWARF has one: DW_AT_name lacks namespaces and
// classes. The _integrate lookups follow DW_AT_abstract_origin and
// DW_AT_specification to the declaration that carries it.
const char* linkage_name(Dwarf_Die* die) {
    Dwarf_Attribute attr;
    const char* name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
    return name != nullptr ? name : dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
}

// The ELF symbol at `pc` without a version suffix ("malloc@@GLIBC_2.2.5"),
// or "" if none.
std::string symbol_name(Dwfl_Module* module, uint64_t pc) {
    GElf_Off offset = 0;
    GElf_Sym symbol;
    const char* name = dwfl_module_addrinfo(module, pc, &offset, &symbol, nullptr, nullptr, nullptr);
    if (name == nullptr) return {};
    return std::string(name, std::strcspn(name, "@"));
}

// GCC gives C++ functions with internal linkage (static, anonymous
// namespace) no DW_AT_linkage_name, but for the function `pc` was compiled
// into, the ELF symbol still has the qualified, mangled name. Inlined ones
// keep their plain DW_AT_name.
std::string function_name(Dwfl_Module* module, uint64_t pc, Dwarf_Die* die) {
    if (const char* name = linkage_name(die)) return name;
    if (dwarf_tag(die) == DW_TAG_subprogram) {
        std::string symbol = symbol_name(module, pc);
        if (is_mangled(symbol)) return symbol;
    }
    const char* name = dwarf_diename(die);
    return name != nullptr ? name : "??";
}

SourcePos line_table_pos(Dwfl_Module* module, uint64_t pc) {
    Dwfl_Line* line = dwfl_module_getsrc(module, pc);
    int number = 0;
    const char* file = line ? dwfl_lineinfo(line, nullptr, &number, nullptr, nullptr, nullptr) : nullptr;
    return file ? SourcePos{file, number} : SourcePos{};
}

// Where the inlined instance `inlined` was called from, in compile unit `cu`.
SourcePos call_site_pos(Dwarf_Die* cu, Dwarf_Die* inlined) {
    SourcePos pos;
    Dwarf_Attribute attr;
    Dwarf_Word value = 0;
    Dwarf_Files* files = nullptr;
    if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_file, &attr), &value) == 0 &&
        dwarf_getsrcfiles(cu, &files, nullptr) == 0) {
        if (const char* file = dwarf_filesrc(files, value, nullptr, nullptr)) pos.file = file;
    }
    if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_line, &attr), &value) == 0)
        pos.line = static_cast<int64_t>(value);
    return pos;
}

// Frames from DWARF: the chain of inlined calls around `pc`, out to the
// function it was compiled into. dwarf_getscopes finds the innermost scope,
// but past an inlined instance it continues in the abstract definition;
// dwarf_getscopes_die from that scope gives the concrete chain instead.
std::vector<Frame> dwarf_frames(Dwfl_Module* module, uint64_t pc) {
    Dwarf_Addr bias = 0;
    Dwarf_Die* cu = dwfl_module_addrdie(module, pc, &bias);
    Dwarf_Die* raw = nullptr;
    if (cu == nullptr || dwarf_getscopes(cu, pc - bias, &raw) <= 0) return {};
    Dwarf_Die innermost = raw[0];
    std::free(raw);
    raw = nullptr;  // dwarf_getscopes_die leaves it alone when it fails
    const int count = dwarf_getscopes_die(&innermost, &raw);
    std::unique_ptr<Dwarf_Die, void (*)(void*)> scopes(raw, &std::free);

    // The innermost frame's line comes from the line table; each outer
    // frame's from the call site recorded on the inlined instance it holds.
    SourcePos pos = line_table_pos(module, pc);
    std::vector<Frame> frames;
    for (int i = 0; i < count; ++i) {
        Dwarf_Die* die = &scopes.get()[i];
        const int tag = dwarf_tag(die);
        if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram) continue;
        frames.push_back(make_frame(function_name(module, pc, die), pos));
        if (tag == DW_TAG_subprogram) break;
        pos = call_site_pos(cu, die);
    }
    return frames;
}

// A single frame from the ELF symbol table, for code without debug info.
// No line: outside any compile unit the line table only has a neighbour's.
std::vector<Frame> symtab_frames(Dwfl_Module* module, uint64_t pc) {
    std::string name = symbol_name(module, pc);
    if (name.empty()) return {};
    return {make_frame(name, {})};
}

std::vector<Frame> lookup(Dwfl* dwfl, uint64_t pc) {
    Dwfl_Module* module = dwfl_addrmodule(dwfl, pc);
    if (module == nullptr) return {};
    std::vector<Frame> frames = dwarf_frames(module, pc);
    return frames.empty() ? symtab_frames(module, pc) : frames;
}

std::string dwfl_error() { return dwfl_errmsg(-1); }

// Reports the file of `mapping` to libdwfl where the process had it loaded.
Result<> report_mapping(Dwfl* dwfl, const Mapping& mapping) {
    auto file = ElfFile::open(mapping.file);
    if (!file.ok()) return Result<>::fail(file.error);
    auto bias = load_bias(*file.value, mapping);
    if (!bias.ok()) return Result<>::fail(bias.error);
    // With add_p_vaddr, the base is the load bias (ET_EXEC ignores it).
    if (!dwfl_report_elf(dwfl, mapping.file.c_str(), mapping.file.c_str(), -1, bias.value, true))
        return Result<>::fail(fmt::format("cannot load {}: {}", mapping.file, dwfl_error()));
    return {};
}

}  // namespace

void Symbolizer::DwflDeleter::operator()(Dwfl* dwfl) const noexcept { dwfl_end(dwfl); }

Symbolizer::Symbolizer(std::unique_ptr<Dwfl, DwflDeleter> dwfl) : dwfl_(std::move(dwfl)) {}

Symbolizer::~Symbolizer() = default;

Result<std::unique_ptr<Symbolizer>> Symbolizer::for_pid(int pid) {
    using R = Result<std::unique_ptr<Symbolizer>>;
    std::unique_ptr<Dwfl, DwflDeleter> dwfl(dwfl_begin(&kCallbacks));
    if (!dwfl) return R::fail("cannot start libdwfl: " + dwfl_error());
    // Positive results are errno values from reading /proc/PID/maps.
    const int rc = dwfl_linux_proc_report(dwfl.get(), pid);
    if (rc > 0) return R::fail(fmt::format("cannot read /proc/{}/maps: {}", pid, std::strerror(rc)));
    if (rc < 0 || dwfl_report_end(dwfl.get(), nullptr, nullptr) != 0)
        return R::fail(fmt::format("cannot list the modules of process {}: {}", pid, dwfl_error()));
    return {std::unique_ptr<Symbolizer>(new Symbolizer(std::move(dwfl))), {}};
}

Result<std::unique_ptr<Symbolizer>> Symbolizer::for_mappings(const std::vector<Mapping>& mappings) {
    using R = Result<std::unique_ptr<Symbolizer>>;
    std::unique_ptr<Dwfl, DwflDeleter> dwfl(dwfl_begin(&kCallbacks));
    if (!dwfl) return R::fail("cannot start libdwfl: " + dwfl_error());
    std::vector<std::string> warnings;
    std::set<std::string> reported;  // libdwfl wants each file once
    for (const Mapping& m : mappings) {
        if (!reported.insert(m.file).second) continue;
        if (auto added = report_mapping(dwfl.get(), m); !added.ok()) warnings.push_back(std::move(added.error));
    }
    if (dwfl_report_end(dwfl.get(), nullptr, nullptr) != 0) return R::fail("libdwfl: " + dwfl_error());
    if (warnings.size() == reported.size())
        return R::fail(warnings.empty() ? "no mappings to symbolize" : warnings.front());
    auto symbolizer = std::unique_ptr<Symbolizer>(new Symbolizer(std::move(dwfl)));
    symbolizer->warnings_ = std::move(warnings);
    return {std::move(symbolizer), {}};
}

const std::vector<Frame>& Symbolizer::resolve(uint64_t pc) {
    auto [it, inserted] = cache_.try_emplace(pc);
    if (inserted) it->second = lookup(dwfl_.get(), pc);
    return it->second;
}

void symbolize(Profile& profile, Symbolizer& symbolizer) {
    for (const Sample& s : profile.samples) {
        for (uint64_t address : s.stack) {
            if (profile.symbols.count(address) != 0) continue;
            const std::vector<Frame>& frames = symbolizer.resolve(call_site(address));
            if (!frames.empty()) profile.symbols.emplace(address, frames);
        }
    }
}

// ---- Text -------------------------------------------------------------------------

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
        return Result<std::string>::fail(fmt::format("no sample type #{}: the profile has {}", sample_index,
                                                     profile.sample_types.size()));
    if (auto checked = check_values(profile); !checked.ok()) return Result<std::string>::fail(checked.error);
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
    return {std::move(out), {}};
}

}  // namespace gometrics::pprof
