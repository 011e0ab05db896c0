// The GOMETRICS_* environment as one table: name, default, allowed values,
// meaning and how to parse it. The agent's Config (agent.h) is parsed from
// it once, and docs/environment.md is generated from it
// (gometrics-catalog --format environment; a test keeps the two in sync).
#pragma once

#include <span>
#include <string_view>

#include "agent.h"

namespace gometrics::agent {

struct EnvVar {
    std::string_view name;
    std::string_view default_text;  // what an unset or empty variable means, parsed like a value; "" = unset
    std::string_view allowed;       // the values parse accepts, for the documentation and the warning
    std::string_view meaning;       // one paragraph of Markdown
    // Stores text's meaning into out; false when text is not allowed.
    bool (*parse)(const char* text, Config& out) noexcept;
};

std::span<const EnvVar> environment_table() noexcept;

// Fills out from lookup (getenv in the agent): each variable that is unset,
// empty or not allowed (one line on stderr says which) gets its default.
// No allocation: it runs before the program's first malloc is served.
void parse_config(Config& out, const char* (*lookup)(const char* name)) noexcept;

}  // namespace gometrics::agent
