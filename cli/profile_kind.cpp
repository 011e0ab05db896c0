// Profile kinds by name; see profile_kind.h.
#include "profile_kind.h"

namespace gometrics::cli {

std::optional<ProfileKind> parse_profile_kind(std::string_view name) {
    if (name == "heap") return ProfileKind::Heap;
    if (name == "allocs") return ProfileKind::Allocs;
    if (name == "mutex") return ProfileKind::Mutex;
    return std::nullopt;
}

std::string_view profile_kind_name(ProfileKind kind) {
    switch (kind) {
        case ProfileKind::Heap: return "heap";
        case ProfileKind::Allocs: return "allocs";
        case ProfileKind::Mutex: return "mutex";
    }
    return "?";
}

}  // namespace gometrics::cli
