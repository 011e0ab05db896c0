// The profile.proto encoder and the gzip'd file pprof reads; see pprof.h.
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <tuple>
#include <unordered_map>

#include <fmt/format.h>

#include "gzip.h"
#include "pprof.h"

namespace gometrics::pprof {

namespace {

using detail::ProtoWriter;

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

}  // namespace


Result<std::string> encode(const Profile& profile) {
    if (auto checked = check_values(profile); !checked) return checked.error();
    return ProfileEncoder(profile).encode();
}

Status write_profile(const Profile& profile, const std::string& path) {
    auto message = encode(profile);
    if (!message) return message.error();
    auto compressed = detail::gzip(*message);
    if (!compressed) return compressed.error();
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> out(std::fopen(path.c_str(), "wb"), &std::fclose);
    if (!out) return Error{fmt::format("cannot write {}: {}", path, std::strerror(errno))};
    const std::string& bytes = *compressed;
    if (std::fwrite(bytes.data(), 1, bytes.size(), out.get()) != bytes.size() || std::fclose(out.release()) != 0)
        return Error{fmt::format("cannot write {}: {}", path, std::strerror(errno))};
    return Ok{};
}

namespace detail {

Result<std::string> gzip(std::string_view data) {
    auto packed = cli::gzip_compress(data, cli::kGzipDefaultLevel);
    if (!packed) return Error{"gzip: zlib failed"};
    return std::move(*packed);
}

}  // namespace detail

}  // namespace gometrics::pprof
