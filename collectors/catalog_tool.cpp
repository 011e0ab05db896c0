// gometrics-catalog: the metric table as the agent declares it, and Go's
// catalogue mapped onto it, for the README (--format markdown, between the
// markers scripts/update-readme.sh rewrites) and for tests (--format tsv);
// and the agent's GOMETRICS_* table as docs/environment.md (--format
// environment, written by scripts/update-docs.sh).
#include <cstring>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "catalog.h"
#include "config.h"
#include "go_catalog.h"

namespace {

using namespace gometrics;

const char* kind_name(layout::Kind k) {
    switch (k) {
        case layout::kKindUint64: return "uint64";
        case layout::kKindFloat64: return "float64";
        case layout::kKindFloat64Histogram: return "float64 histogram";
        default: return "bad";
    }
}

std::string_view unit_of(std::string_view name) { return name.substr(name.rfind(':') + 1); }

const collect::Metric* ours(std::string_view name) {
    for (const auto* m : collect::catalog())
        if (m->name == name) return m;
    return nullptr;
}

// What one of Go's metrics is here, from go_catalog.cpp and this build's
// table: a mapping whose metric is not (yet) in the table says so.
std::string here(const collect::GoMetric& g) {
    using enum collect::GoMapping;
    switch (g.mapping) {
        case kSame: return ours(g.name) ? "same name" : "planned under the same name, not in this build";
        case kAnalogue:
            return ours(g.note) ? fmt::format("native analogue: `{}`", g.note)
                                : fmt::format("planned as `{}`, not in this build", g.note);
        case kNotApplicable: break;
    }
    return fmt::format("not applicable: {}", g.note);
}

void print_markdown() {
    fmt::print("### Metrics of gometrics\n\n");
    fmt::print("| Name | Kind | Unit | Cumulative | Meaning |\n|---|---|---|---|---|\n");
    for (const auto* m : collect::catalog())
        fmt::print("| `{}` | {} | {} | {} | {} |\n", m->name, kind_name(m->kind), unit_of(m->name),
                   m->cumulative ? "yes" : "no", m->description);
    fmt::print("\n### Go's catalogue, metric by metric\n\n");
    fmt::print("| Go's metric | Here |\n|---|---|\n");
    for (const auto& g : collect::go_catalog()) fmt::print("| `{}` | {} |\n", g.name, here(g));
}

// docs/environment.md, whole.
void print_environment() {
    fmt::print("# Environment of the agent\n\n"
               "<!-- Generated from agent/config.cpp by scripts/update-docs.sh; edit the table there. -->\n\n"
               "The agent (`libgometrics.so`) reads these variables once, when it starts in a process. All are "
               "optional: with none set it publishes, counts and profiles with the defaults below. A value that is "
               "not allowed is ignored with one line on stderr, and the default applies.\n\n");
    fmt::print("| Variable | Default | Allowed | Meaning |\n|---|---|---|---|\n");
    for (const auto& v : agent::environment_table())
        fmt::print("| `{}` | {} | {} | {} |\n", v.name, v.default_text.empty() ? "unset" : fmt::format("`{}`", v.default_text),
                   v.allowed, v.meaning);
}

}  // namespace

int main(int argc, char** argv) {
    const bool markdown = argc > 2 && std::strcmp(argv[1], "--format") == 0 && std::strcmp(argv[2], "markdown") == 0;
    const bool tsv = argc > 2 && std::strcmp(argv[1], "--format") == 0 && std::strcmp(argv[2], "tsv") == 0;
    const bool environment = argc > 2 && std::strcmp(argv[1], "--format") == 0 && std::strcmp(argv[2], "environment") == 0;
    if (environment) {
        print_environment();
        return 0;
    }
    if (!markdown && !tsv) {
        fmt::print(stderr, "usage: gometrics-catalog --format markdown|tsv|environment\n");
        return 2;
    }
    if (markdown) {
        print_markdown();
    } else {
        for (const auto* m : collect::catalog())
            fmt::print("{}\t{}\t{}\t{}\t{}\n", m->name, kind_name(m->kind), m->cumulative ? 1 : 0,
                       m->bounds.size(), m->description);
    }
    return 0;
}
