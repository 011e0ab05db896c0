// gzip (RFC 1952) through zlib, for pprof files and HTTP responses.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace gometrics::cli {

inline constexpr int kGzipDefaultLevel = -1;  // zlib's Z_DEFAULT_COMPRESSION
inline constexpr int kGzipFastestLevel = 1;   // Z_BEST_SPEED

// `data` as one gzip member at zlib level `level`; nullopt if zlib fails.
std::optional<std::string> gzip_compress(std::string_view data, int level);

}  // namespace gometrics::cli
