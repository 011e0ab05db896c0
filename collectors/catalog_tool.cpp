// gometrics-catalog: the metric table as the agent declares it, for the
// README (--format markdown) and for tests (--format tsv).
#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "catalog.h"

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

}  // namespace

int main(int argc, char** argv) {
    const bool markdown = argc > 2 && std::strcmp(argv[1], "--format") == 0 && std::strcmp(argv[2], "markdown") == 0;
    const bool tsv = argc > 2 && std::strcmp(argv[1], "--format") == 0 && std::strcmp(argv[2], "tsv") == 0;
    if (!markdown && !tsv) {
        fmt::print(stderr, "usage: gometrics-catalog --format markdown|tsv\n");
        return 2;
    }
    if (markdown) {
        fmt::print("| Name | Kind | Unit | Cumulative | Meaning |\n|---|---|---|---|---|\n");
        for (const auto* m : collect::catalog())
            fmt::print("| `{}` | {} | {} | {} | {} |\n", m->name, kind_name(m->kind), unit_of(m->name),
                       m->cumulative ? "yes" : "no", m->description);
    } else {
        for (const auto* m : collect::catalog())
            fmt::print("{}\t{}\t{}\t{}\t{}\n", m->name, kind_name(m->kind), m->cumulative ? 1 : 0,
                       m->bounds.size(), m->description);
    }
    return 0;
}
