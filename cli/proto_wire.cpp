// The protobuf wire format writer; see proto_wire.h.
#include "proto_wire.h"

#include <bit>

namespace gometrics::pprof::detail {

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

}  // namespace gometrics::pprof::detail
