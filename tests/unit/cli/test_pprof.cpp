// Unit tests of cli/pprof: wire format bytes, the encoded profile's
// structure (read back with a minimal decoder), gzip, /proc maps, the
// libdwfl symbolizer on this test's own code, and the text renderer.
// Needs debug info (-g) for the file:line checks.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>
#include <zlib.h>

#include "pprof.h"

namespace pprof = gometrics::pprof;
using pprof::detail::ProtoWriter;

namespace {

std::string bytes(std::initializer_list<unsigned> values) {
    std::string out;
    for (unsigned v : values) out.push_back(static_cast<char>(v));
    return out;
}

std::string varint_bytes(uint64_t value) {
    ProtoWriter w;
    w.varint(value);
    return w.bytes();
}

// ---- A minimal protobuf reader: enough to check the writer's output ----

struct Field {
    int number = 0;
    uint64_t varint = 0;  // wire type 0
    std::string bytes;    // wire type 2
};

uint64_t read_varint(const std::string& in, std::size_t& pos) {
    uint64_t value = 0;
    for (int shift = 0; pos < in.size(); shift += 7) {
        const auto byte = static_cast<unsigned char>(in[pos++]);
        value |= static_cast<uint64_t>(byte & 0x7f) << shift;
        if ((byte & 0x80) == 0) return value;
    }
    FAIL("truncated varint");
    return 0;
}

std::vector<Field> decode(const std::string& message) {
    std::vector<Field> fields;
    for (std::size_t pos = 0; pos < message.size();) {
        const uint64_t tag = read_varint(message, pos);
        Field f;
        f.number = static_cast<int>(tag >> 3);
        if ((tag & 7) == 0) {
            f.varint = read_varint(message, pos);
        } else {
            REQUIRE((tag & 7) == 2);
            const uint64_t size = read_varint(message, pos);
            REQUIRE(pos + size <= message.size());
            f.bytes = message.substr(pos, size);
            pos += size;
        }
        fields.push_back(std::move(f));
    }
    return fields;
}

// Fields of one message by number, in order.
using Message = std::multimap<int, Field>;

Message to_message(const std::string& bytes) {
    Message m;
    for (Field& f : decode(bytes)) m.emplace(f.number, std::move(f));
    return m;
}

std::vector<Message> repeated(const Message& m, int number) {
    std::vector<Message> out;
    for (auto [it, end] = m.equal_range(number); it != end; ++it) out.push_back(to_message(it->second.bytes));
    return out;
}

uint64_t scalar(const Message& m, int number) {
    auto it = m.find(number);
    return it == m.end() ? 0 : it->second.varint;
}

std::vector<uint64_t> packed(const Message& m, int number) {
    std::vector<uint64_t> out;
    auto it = m.find(number);
    if (it == m.end()) return out;
    for (std::size_t pos = 0; pos < it->second.bytes.size();) out.push_back(read_varint(it->second.bytes, pos));
    return out;
}

struct Decoded {
    Message profile;
    std::vector<std::string> strings;
    std::string str(const Message& m, int number) const { return strings.at(scalar(m, number)); }
};

Decoded decode_profile(const pprof::Profile& profile) {
    auto encoded = pprof::encode(profile);
    REQUIRE(encoded);
    Decoded d{to_message(*encoded), {}};
    for (auto [it, end] = d.profile.equal_range(6); it != end; ++it) d.strings.push_back(it->second.bytes);
    return d;
}

// ---- Known code addresses in this binary ----
// noipa: real calls at known lines, without clones (".constprop") whose
// symbol names would differ at -O2.

struct CallSite {
    uint64_t return_address = 0;
    int line = 0;
};

[[gnu::noipa]] uint64_t my_return_address() {
    return reinterpret_cast<uint64_t>(__builtin_extract_return_addr(__builtin_return_address(0)));
}

// Internal linkage on purpose: GCC's DWARF has no linkage name for it, so
// the symbolizer must take the qualified name from the ELF symbol table.
[[gnu::noipa]] CallSite known_call_site() {
    CallSite site{my_return_address(), __LINE__};
    asm volatile("" ::: "memory");  // keeps the call above from becoming a tail call
    return site;
}

[[gnu::always_inline]] inline CallSite inlined_call_site() { return {my_return_address(), __LINE__}; }

[[gnu::noipa]] CallSite outer_of_inlined(int& outer_line) {
    CallSite site = inlined_call_site(); outer_line = __LINE__;  // one line: the call's
    asm volatile("" ::: "memory");
    return site;
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void check_known_call_site(pprof::Symbolizer& symbolizer) {
    const CallSite site = known_call_site();
    const auto& frames = symbolizer.resolve(pprof::call_site(site.return_address));
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].function == "(anonymous namespace)::known_call_site()");
    CHECK(frames[0].system_name.rfind("_Z", 0) == 0);
    CHECK(ends_with(frames[0].file, "test_pprof.cpp"));
    CHECK(frames[0].line == site.line);
}

std::string gunzip(const std::string& data) {
    z_stream zs{};
    REQUIRE(inflateInit2(&zs, 15 + 16) == Z_OK);
    std::string out(1 << 20, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    const int rc = inflate(&zs, Z_FINISH);
    out.resize(zs.total_out);
    inflateEnd(&zs);
    REQUIRE(rc == Z_STREAM_END);
    return out;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

// Two mappings, three distinct addresses (one shared by both stacks, one
// mapped nowhere), in the order the tests below rely on.
pprof::Profile small_profile() {
    pprof::Profile p;
    p.sample_types = pprof::heap_sample_types();
    p.mappings = {{0x1000, 0x2000, 0x0, "/bin/app", "abcd"}, {0x7000, 0x8000, 0x3000, "/lib/libc.so.6", ""}};
    p.samples = {{{0x1010, 0x7020}, {1, 100, 1, 100}}, {{0x9000, 0x7020}, {3, 300, 0, 0}}};
    p.period_type = {"space", "bytes"};
    p.period = 524288;
    p.time_nanos = 1700000000000000000;
    p.duration_nanos = 5;
    p.comments = {"gometrics"};
    p.drop_frames = "gometrics::.*";
    p.default_sample_type = "alloc_space";
    return p;
}

}  // namespace

TEST_CASE("varints use 7 bits a byte, low group first", "[pprof][wire]") {
    CHECK(varint_bytes(0) == bytes({0x00}));
    CHECK(varint_bytes(1) == bytes({0x01}));
    CHECK(varint_bytes(127) == bytes({0x7f}));
    CHECK(varint_bytes(128) == bytes({0x80, 0x01}));
    CHECK(varint_bytes(300) == bytes({0xac, 0x02}));
    CHECK(varint_bytes(UINT64_MAX) == bytes({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}));
}

TEST_CASE("fields encode as in the protobuf encoding guide", "[pprof][wire]") {
    ProtoWriter w;
    SECTION("varint field") {
        w.uint64_field(1, 150);
        CHECK(w.bytes() == bytes({0x08, 0x96, 0x01}));
    }
    SECTION("negative int64 is ten bytes of two's complement") {
        w.int64_field(2, -1);
        CHECK(w.bytes() == bytes({0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}));
    }
    SECTION("zero and false are omitted, as proto3 defaults") {
        w.uint64_field(1, 0);
        w.int64_field(2, 0);
        w.bool_field(3, false);
        w.packed_uint64_field(4, {});
        CHECK(w.bytes().empty());
        w.bool_field(7, true);
        CHECK(w.bytes() == bytes({0x38, 0x01}));
    }
    SECTION("string field") {
        w.bytes_field(2, "testing");
        CHECK(w.bytes() == bytes({0x12, 0x07, 't', 'e', 's', 't', 'i', 'n', 'g'}));
    }
    SECTION("empty string is still written") {
        w.bytes_field(6, "");
        CHECK(w.bytes() == bytes({0x32, 0x00}));
    }
    SECTION("packed repeated field") {
        w.packed_uint64_field(4, {3, 270, 86942});
        CHECK(w.bytes() == bytes({0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05}));
    }
    SECTION("embedded message") {
        ProtoWriter inner;
        inner.uint64_field(1, 150);
        w.message_field(3, inner);
        CHECK(w.bytes() == bytes({0x1a, 0x03, 0x08, 0x96, 0x01}));
    }
}

TEST_CASE("an unsymbolized profile decodes to the same structure", "[pprof][encode]") {
    const Decoded d = decode_profile(small_profile());
    const Message& p = d.profile;

    REQUIRE(!d.strings.empty());
    CHECK(d.strings[0].empty());

    SECTION("fields come in field-number order") {
        int last = 0;
        for (const auto& f : decode(*pprof::encode(small_profile()))) {
            CHECK(f.number >= last);
            last = f.number;
        }
    }
    SECTION("sample types") {
        const auto types = repeated(p, 1);
        REQUIRE(types.size() == 4);
        CHECK(d.str(types[1], 1) == "alloc_space");
        CHECK(d.str(types[1], 2) == "bytes");
    }
    SECTION("samples point at one location per distinct address") {
        const auto samples = repeated(p, 2);
        REQUIRE(samples.size() == 2);
        CHECK(packed(samples[0], 1) == std::vector<uint64_t>{1, 2});
        CHECK(packed(samples[1], 1) == std::vector<uint64_t>{3, 2});
        CHECK(packed(samples[1], 2) == std::vector<uint64_t>{3, 300, 0, 0});
    }
    SECTION("locations hold call sites and their mapping") {
        const auto locations = repeated(p, 4);
        REQUIRE(locations.size() == 3);
        CHECK(scalar(locations[0], 1) == 1);
        CHECK(scalar(locations[0], 2) == 1);
        CHECK(scalar(locations[0], 3) == 0x100f);
        CHECK(scalar(locations[1], 2) == 2);
        CHECK(scalar(locations[2], 2) == 0);  // mapped nowhere
        CHECK(scalar(locations[2], 3) == 0x8fff);
        CHECK(repeated(locations[0], 4).empty());  // pprof symbolizes from the binary
        CHECK(repeated(p, 5).empty());
    }
    SECTION("mappings") {
        const auto mappings = repeated(p, 3);
        REQUIRE(mappings.size() == 2);
        CHECK(scalar(mappings[1], 1) == 2);
        CHECK(scalar(mappings[1], 2) == 0x7000);
        CHECK(scalar(mappings[1], 3) == 0x8000);
        CHECK(scalar(mappings[1], 4) == 0x3000);
        CHECK(d.str(mappings[1], 5) == "/lib/libc.so.6");
        CHECK(d.str(mappings[0], 6) == "abcd");
        CHECK(scalar(mappings[0], 7) == 0);  // has_functions
    }
    SECTION("profile-wide fields") {
        CHECK(d.str(p, 7) == "gometrics::.*");
        CHECK(scalar(p, 9) == 1700000000000000000);
        CHECK(scalar(p, 10) == 5);
        const auto period_type = repeated(p, 11);
        REQUIRE(period_type.size() == 1);
        CHECK(d.str(period_type[0], 1) == "space");
        CHECK(scalar(p, 12) == 524288);
        const auto comments = packed(p, 13);
        REQUIRE(comments.size() == 1);
        CHECK(d.strings.at(comments[0]) == "gometrics");
        CHECK(d.str(p, 14) == "alloc_space");
    }
}

TEST_CASE("a symbolized profile carries functions and lines", "[pprof][encode]") {
    pprof::Profile profile = small_profile();
    // 0x1010: helper() inlined into _Z3runv, the same function as 0x7020's.
    profile.symbols[0x1010] = {{"helper()", "_Z6helperv", "/src/app.cpp", 12},
                               {"run()", "_Z3runv", "/src/app.cpp", 40}};
    profile.symbols[0x7020] = {{"run()", "_Z3runv", "/src/app.cpp", 44}};
    const Decoded d = decode_profile(profile);

    const auto functions = repeated(d.profile, 5);
    REQUIRE(functions.size() == 2);
    CHECK(d.str(functions[0], 2) == "_Z6helperv");  // pprof demangles it per its own options
    CHECK(d.str(functions[0], 3) == "_Z6helperv");
    CHECK(d.str(functions[1], 4) == "/src/app.cpp");

    const auto locations = repeated(d.profile, 4);
    const auto lines = repeated(locations[0], 4);
    REQUIRE(lines.size() == 2);
    CHECK(scalar(lines[0], 1) == 1);
    CHECK(scalar(lines[0], 2) == 12);
    CHECK(scalar(lines[1], 1) == 2);
    CHECK(scalar(repeated(locations[1], 4).at(0), 1) == 2);

    const auto mappings = repeated(d.profile, 3);
    for (int flag = 7; flag <= 10; ++flag) CHECK(scalar(mappings[0], flag) == 1);
}

TEST_CASE("encode rejects samples whose value count does not match", "[pprof][encode]") {
    pprof::Profile profile = small_profile();
    profile.samples[1].values.pop_back();
    const auto encoded = pprof::encode(profile);
    CHECK_FALSE(encoded);
    CHECK(encoded.error().message == "sample 1 has 3 values for 4 sample types");
}

TEST_CASE("write_profile writes the gzip'd message", "[pprof][file]") {
    const std::string path = "/tmp/gometrics_test_pprof_" + std::to_string(getpid()) + ".pb.gz";
    const pprof::Profile profile = small_profile();
    REQUIRE(pprof::write_profile(profile, path));
    CHECK(gunzip(read_file(path)) == *pprof::encode(profile));
    std::remove(path.c_str());

    const auto failed = pprof::write_profile(profile, "/nonexistent/dir/x.pb.gz");
    CHECK(failed.error().message == "cannot write /nonexistent/dir/x.pb.gz: No such file or directory");
}

TEST_CASE("read_mappings lists executable file mappings, the executable first", "[pprof][maps]") {
    const auto mappings = pprof::read_mappings(getpid());
    REQUIRE(mappings);
    REQUIRE(mappings->size() >= 2);
    char exe[4096] = {};
    REQUIRE(readlink("/proc/self/exe", exe, sizeof exe - 1) > 0);
    const pprof::Mapping& main = (*mappings)[0];
    CHECK(main.file == exe);
    CHECK(main.build_id.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(main.build_id.size() == 40);  // SHA-1, GNU ld's default
    const auto code = known_call_site().return_address;
    CHECK((code >= main.start && code < main.limit));
    for (const auto& m : *mappings) CHECK(m.file.front() == '/');

    const auto missing = pprof::read_mappings(999999999);
    CHECK(missing.error().message == "cannot read /proc/999999999/maps: No such file or directory");
}

TEST_CASE("find_sample_type", "[pprof]") {
    const pprof::Profile profile = small_profile();
    CHECK(pprof::find_sample_type(profile, "inuse_space") == 3u);
    CHECK_FALSE(pprof::find_sample_type(profile, "delay").has_value());
}

TEST_CASE("the symbolizer resolves this process's code", "[pprof][symbolize]") {
    SECTION("live, from /proc") {
        auto symbolizer = pprof::Symbolizer::for_pid(getpid());
        REQUIRE(symbolizer);
        check_known_call_site(**symbolizer);
    }
    SECTION("after exit, from a mappings list; unloadable files are warnings") {
        auto mappings = pprof::read_mappings(getpid());
        REQUIRE(mappings);
        mappings->push_back({0x10000, 0x20000, 0, "/nonexistent/libgone.so", ""});
        auto symbolizer = pprof::Symbolizer::for_mappings(*mappings);
        REQUIRE(symbolizer);
        check_known_call_site(**symbolizer);
        REQUIRE((*symbolizer)->warnings().size() == 1);
        CHECK((*symbolizer)->warnings()[0] ==
              "cannot read ELF file /nonexistent/libgone.so: No such file or directory");
    }
    SECTION("inlined calls give one frame each, innermost first") {
        auto symbolizer = pprof::Symbolizer::for_pid(getpid());
        REQUIRE(symbolizer);
        int outer_line = 0;
        const CallSite site = outer_of_inlined(outer_line);
        const auto& frames = (*symbolizer)->resolve(pprof::call_site(site.return_address));
        REQUIRE(frames.size() == 2);
        CHECK(frames[0].function.find("inlined_call_site") != std::string::npos);
        CHECK(frames[0].line == site.line);
        CHECK(frames[1].function == "(anonymous namespace)::outer_of_inlined(int&)");
        CHECK(frames[1].line == outer_line);
    }
    SECTION("unknown addresses resolve to nothing") {
        auto symbolizer = pprof::Symbolizer::for_pid(getpid());
        REQUIRE(symbolizer);
        CHECK((*symbolizer)->resolve(0x10).empty());
    }
}

TEST_CASE("symbolizers fail with one-line messages", "[pprof][symbolize]") {
    const auto no_process = pprof::Symbolizer::for_pid(999999999);
    CHECK(no_process.error().message == "cannot read /proc/999999999/maps: No such file or directory");
    const auto nothing_loadable =
        pprof::Symbolizer::for_mappings({{0x1000, 0x2000, 0, "/nonexistent/app", ""}});
    CHECK(nothing_loadable.error().message == "cannot read ELF file /nonexistent/app: No such file or directory");
}

TEST_CASE("symbolize() keys frames by return address, resolved at the call", "[pprof][symbolize]") {
    const CallSite site = known_call_site();
    pprof::Profile profile;
    profile.sample_types = {{"samples", "count"}};
    profile.samples = {{{site.return_address}, {1}}};
    auto symbolizer = pprof::Symbolizer::for_pid(getpid());
    REQUIRE(symbolizer);
    pprof::symbolize(profile, **symbolizer);
    REQUIRE(profile.symbols.count(site.return_address) == 1);
    CHECK(profile.symbols[site.return_address].at(0).line == site.line);
}

TEST_CASE("render_text ranks stacks by one sample type", "[pprof][text]") {
    pprof::Profile profile;
    profile.sample_types = pprof::heap_sample_types();
    profile.mappings = {{0x1000, 0x2000, 0x400, "/bin/app", ""}};
    profile.samples = {
        {{0x1100, 0x1200}, {1, 1024, 1, 1024}},
        {{0x1300, 0x1200}, {3, 7 << 19, 0, 0}},  // 3.5 MiB
        {{0x1100, 0x1200}, {1, 2048, 1, 2048}},  // same stack as the first
        {{0x1400}, {1, 0, 0, 0}},                // no bytes: not listed
    };
    profile.symbols[0x1100] = {{"alpha()", "_Z5alphav", "/src/a.cpp", 7}};
    profile.symbols[0x1200] = {{"main", "main", "/src/a.cpp", 20}};
    profile.symbols[0x1300] = {{"beta()", "_Z4betav", "", 0}};

    const auto text = pprof::render_text(profile, 1, 10);
    REQUIRE(text);
    CHECK(*text ==
          "alloc_space: total 3.5 MiB in 3 stacks, top 2\n"
          "     3.5 MiB  99.9%\n"
          "      beta()\n"
          "      main (/src/a.cpp:20)\n"
          "       3 KiB   0.1%\n"
          "      alpha() (/src/a.cpp:7)\n"
          "      main (/src/a.cpp:20)\n");

    SECTION("top limits the stacks; unsymbolized frames show their file offset") {
        profile.symbols.clear();
        const auto top1 = pprof::render_text(profile, 1, 1);
        REQUIRE(top1);
        CHECK(*top1 ==
              "alloc_space: total 3.5 MiB in 3 stacks, top 1\n"
              "     3.5 MiB  99.9%\n"
              "      0x1300 (/bin/app+0x700)\n"
              "      0x1200 (/bin/app+0x600)\n");
    }
    SECTION("delays print as times, in the CLI's units") {
        profile.sample_types = pprof::mutex_sample_types();
        profile.samples = {{{0x1100}, {2, 1500000}}, {{0x1300}, {1, 500}}};
        const auto delays = pprof::render_text(profile, 1, 10);
        REQUIRE(delays);
        CHECK(delays->find("delay: total 1.5ms in 2 stacks, top 2\n") == 0);
        CHECK(delays->find("       500ns   0.0%\n") != std::string::npos);
    }
    SECTION("an unknown sample type is an error") {
        CHECK(pprof::render_text(profile, 4, 10).error().message == "no sample type #4: the profile has 4");
    }
}
