// Go's runtime/metrics catalogue, and what each of its metrics is here: the
// same name, a native analogue, or not applicable (and why). The README's
// map and the table tests come from this one list (go_catalog.cpp).
#pragma once

#include <span>
#include <string_view>

#include "layout.h"

namespace gometrics::collect {

enum class GoMapping {
    kSame,           // published here under Go's name, with Go's kind and cumulativeness
    kAnalogue,       // `note` names the native metric that plays its part
    kNotApplicable,  // `note` says why a native process has no such thing
};

struct GoMetric {
    std::string_view name;  // Go's name
    layout::Kind kind;      // Go's kind
    bool cumulative;        // Go's
    GoMapping mapping;
    std::string_view note;  // the analogue's name, or the reason; empty for kSame
};

// Sorted by name: Go 1.24's documented catalogue and the later additions
// of the cheat sheet in ../shared/reference.
std::span<const GoMetric> go_catalog();

}  // namespace gometrics::collect
