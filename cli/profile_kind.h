// The profile kinds the CLI writes, by name. Apart from the profile builder
// so that the commands that only name a kind (exec --profile) do not link it.
#pragma once

#include <optional>
#include <string_view>

namespace gometrics::cli {

// heap: in-use and allocated (pprof shows inuse_space); allocs: the same
// values, shown as alloc_space (Go's "allocs" profile); mutex: contentions
// and their delay.
enum class ProfileKind { Heap, Allocs, Mutex };

std::optional<ProfileKind> parse_profile_kind(std::string_view name);
std::string_view profile_kind_name(ProfileKind kind);

}  // namespace gometrics::cli
