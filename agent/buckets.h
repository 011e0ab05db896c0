// Histogram bucket schemes shared by the hot path (index of a value, a few
// instructions) and the collectors (the fixed edges published with each
// histogram). Both are log-linear: a few sub-buckets per power of two, as
// Go's runtime time histograms are.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace gometrics::buckets {

// Allocation sizes in bytes: [0,8), then 2 sub-buckets per power of two
// from 8 up to 2^40, then [2^40, +Inf).
inline constexpr unsigned kSizeMinLog2 = 3, kSizeMaxLog2 = 40, kSizeSubBits = 1;
inline constexpr size_t kSizeCounts = 2 + (kSizeMaxLog2 - kSizeMinLog2) * (1u << kSizeSubBits);

// Wait times in nanoseconds: [0,128ns), then 4 sub-buckets per power of two
// up to 2^37 ns (137 s), then [137 s, +Inf). Edges are published in seconds.
inline constexpr unsigned kTimeMinLog2 = 7, kTimeMaxLog2 = 37, kTimeSubBits = 2;
inline constexpr size_t kTimeCounts = 2 + (kTimeMaxLog2 - kTimeMinLog2) * (1u << kTimeSubBits);

// Exact small sizes, the hot path's common case: a usable size that is a
// multiple of 8 up to 1016 bytes (every small block of glibc, jemalloc and
// tcmalloc) is counted in a class of its own, indexed by the size itself, so
// one test and one increment count the object and, exactly, its bytes (the
// class's size times its count). Other sizes count their bytes and a
// log-linear bucket.
inline constexpr size_t kSmallMask = 0x3F8;  // usable & ~kSmallMask == 0: small
inline constexpr size_t kSmallCounts = (kSmallMask >> 3) + 1;
[[gnu::always_inline]] constexpr bool is_small(uint64_t usable) noexcept { return (usable & ~uint64_t{kSmallMask}) == 0; }

template <unsigned MinLog2, unsigned MaxLog2, unsigned SubBits>
constexpr size_t log_linear_index(uint64_t v) noexcept {
    constexpr size_t kLast = 1 + (MaxLog2 - MinLog2) * (1u << SubBits);
    if (v < (uint64_t{1} << MinLog2)) return 0;
    const unsigned e = 63u ^ static_cast<unsigned>(__builtin_clzll(v));  // one bsr
    const size_t sub = static_cast<size_t>(v >> (e - SubBits)) & ((1u << SubBits) - 1);
    const size_t i = 1 + (size_t{e} - MinLog2) * (1u << SubBits) + sub;
    return i < kLast ? i : kLast;  // a cmov, not a branch
}

constexpr size_t size_index(uint64_t bytes) noexcept {
    return log_linear_index<kSizeMinLog2, kSizeMaxLog2, kSizeSubBits>(bytes);
}
constexpr size_t time_index(uint64_t ns) noexcept {
    return log_linear_index<kTimeMinLog2, kTimeMaxLog2, kTimeSubBits>(ns);
}

template <size_t Counts, unsigned MinLog2, unsigned MaxLog2, unsigned SubBits>
constexpr std::array<double, Counts + 1> log_linear_edges(double scale) {
    std::array<double, Counts + 1> e{};
    size_t i = 0;
    e[i++] = 0;
    for (unsigned p = MinLog2; p < MaxLog2; ++p)
        for (unsigned s = 0; s < (1u << SubBits); ++s)
            e[i++] = double((uint64_t{1} << p) + (uint64_t{s} << (p - SubBits))) * scale;
    e[i++] = double(uint64_t{1} << MaxLog2) * scale;
    e[i] = std::numeric_limits<double>::infinity();
    return e;
}

inline constexpr auto kSizeEdges = log_linear_edges<kSizeCounts, kSizeMinLog2, kSizeMaxLog2, kSizeSubBits>(1.0);
inline constexpr auto kTimeEdgesSeconds =
    log_linear_edges<kTimeCounts, kTimeMinLog2, kTimeMaxLog2, kTimeSubBits>(1e-9);

static_assert(size_index(0) == 0 && size_index(7) == 0 && size_index(8) == 1 && size_index(11) == 1 &&
              size_index(12) == 2 && size_index(16) == 3);
static_assert(size_index(uint64_t{1} << 40) == kSizeCounts - 1 && size_index(~uint64_t{0}) == kSizeCounts - 1);
static_assert(kSizeEdges[1] == 8 && kSizeEdges[2] == 12 && kSizeEdges[3] == 16 && kSizeEdges[kSizeCounts - 1] == double(uint64_t{1} << 40));
static_assert(is_small(0) && is_small(8) && is_small(1016) && !is_small(1017) && !is_small(1024) && !is_small(12) &&
              !is_small(uint64_t{1} << 40) && kSmallCounts == 128);
static_assert(time_index(127) == 0 && time_index(128) == 1 && time_index(160) == 2 && time_index(256) == 5);

}  // namespace gometrics::buckets
