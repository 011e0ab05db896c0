// The protobuf wire format, written by hand (varints, length-delimited and
// 64-bit fields, packed repeated fields) so that the CLI needs no protobuf
// build dependency: pprof's profile.proto and OTLP's messages use it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gometrics::pprof::detail {

// Appends protobuf wire format (https://protobuf.dev/programming-guides/encoding/).
// Scalar fields equal to zero are omitted, as proto3 does for defaults.
class ProtoWriter {
public:
    void varint(uint64_t value);
    void uint64_field(int field, uint64_t value);
    void int64_field(int field, int64_t value);
    void bool_field(int field, bool value);
    // Always written, even when empty: string_table[0] must be "".
    void bytes_field(int field, std::string_view bytes);
    void message_field(int field, const ProtoWriter& message);
    void packed_uint64_field(int field, const std::vector<uint64_t>& values);
    void packed_int64_field(int field, const std::vector<int64_t>& values);
    // 64-bit wire type (fixed64, sfixed64, double), for OTLP. fixed64_field
    // omits zero; double_field always writes, since OTLP's doubles sit in
    // oneofs and optionals where a present 0 differs from an absent value.
    void fixed64_field(int field, uint64_t value);
    void double_field(int field, double value);
    void sfixed64_field(int field, int64_t value);  // always written, as a oneof member
    void packed_fixed64_field(int field, const std::vector<uint64_t>& values);
    void packed_double_field(int field, const std::vector<double>& values);

    const std::string& bytes() const noexcept { return out_; }

private:
    enum class WireType : uint8_t { Varint = 0, Fixed64 = 1, LengthDelimited = 2 };
    void tag(int field, WireType type);
    void fixed64(uint64_t value);  // little-endian, as the wire format stores 64-bit fields

    std::string out_;
};

}  // namespace gometrics::pprof::detail
