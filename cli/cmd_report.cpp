// `check` (check expressions on a saved report) and `diff` (what changed
// between two saved reports, for CI regressions).
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "aggregate.h"
#include "commands.h"
#include "common.h"
#include "histstats.h"
#include "report_file.h"
#include "units.h"

namespace gometrics::cli {

namespace {

int check(const std::string& file, const std::vector<std::string>& exprs, bool quiet) {
    const std::vector<Check> checks = parse_checks(exprs);  // bad expressions: status 2 before anything
    const Report report = load_report(file);
    const auto results = run_checks(report, checks);
    print_check_results(results, quiet, false);
    return std::all_of(results.begin(), results.end(), [](const auto& r) { return r.passed; }) ? kExitOk : kExitError;
}

// One compared quantity: a scalar, or one statistic of a histogram.
struct Row {
    std::string label;  // "/gc/heap/allocs:bytes" or "/gc/heap/allocs-by-size:bytes:p99"
    std::string unit;   // for human()
    std::optional<double> a, b;
    // Whether --fail-over judges it: not a setting or limit (Aggregation::
    // None), whose growth is a choice, not a cost.
    bool judged = true;
};

void add_rows(std::vector<Row>& rows, const std::string& name, const Value* a, const Value* b) {
    const auto scalar = [](const Value* v) -> std::optional<double> {
        if (!v) return std::nullopt;
        if (v->kind == ValueKind::Uint64) return static_cast<double>(v->u64);
        if (v->kind == ValueKind::Float64) return v->f64;
        return std::nullopt;
    };
    const auto hist = [](const Value* v) { return v && v->kind == ValueKind::Float64Histogram ? &v->hist : nullptr; };
    const std::string unit(unit_of(name));
    const Float64Histogram *ha = hist(a), *hb = hist(b);
    if (!ha && !hb) {
        rows.push_back({name, unit, scalar(a), scalar(b)});
        return;
    }
    const auto stat = [](const Float64Histogram* h, double q) -> std::optional<double> {
        if (!h) return std::nullopt;
        if (q < 0) return static_cast<double>(total_count(*h));
        const double v = quantile(*h, q);
        return std::isnan(v) ? std::nullopt : std::optional<double>(v);
    };
    rows.push_back({name + ":count", "", stat(ha, -1), stat(hb, -1)});
    rows.push_back({name + ":p50", unit, stat(ha, 0.5), stat(hb, 0.5)});
    rows.push_back({name + ":p99", unit, stat(ha, 0.99), stat(hb, 0.99)});
}

// Percent change from a to b; +Inf when a is 0 and b is not.
double change_percent(double a, double b) {
    if (a == b) return 0;
    if (a == 0) return b > 0 ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
    return (b - a) / std::fabs(a) * 100;
}

std::string change_text(const Row& r) {
    if (!r.a) return "only in B";
    if (!r.b) return "only in A";
    const double c = change_percent(*r.a, *r.b);
    if (std::isinf(c)) return c > 0 ? "new (was 0)" : "gone (now 0)";
    return fmt::format("{:+.1f}%", c);
}

bool selected(const std::string& label, const std::vector<std::string>& only) {
    if (only.empty()) return true;
    for (const auto& p : only)
        if (label.starts_with(p)) return true;
    return false;
}

int diff(const std::string& fa, const std::string& fb, std::optional<double> fail_over,
         const std::vector<std::string>& only) {
    if (fail_over && !(*fail_over >= 0)) throw Failure(kExitUsage, "--fail-over takes a percentage >= 0");
    const Report a = load_report(fa), b = load_report(fb);
    std::vector<std::string> names;
    for (const auto& m : a.all()) names.push_back(m.desc.name);
    for (const auto& m : b.all()) names.push_back(m.desc.name);
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());

    std::vector<Row> rows;
    std::map<std::string, Aggregation> how;
    for (const Report* r : {&b, &a})
        for (const auto& m : r->all()) how[m.desc.name] = aggregation_of(m.desc);
    for (const auto& n : names) {
        const size_t first = rows.size();
        add_rows(rows, n, a.find(n), b.find(n));
        for (size_t i = first; i < rows.size(); ++i) rows[i].judged = how[n] != Aggregation::None;
    }
    std::erase_if(rows, [&](const Row& r) { return !selected(r.label, only); });

    size_t width = 6;
    for (const auto& r : rows) width = std::max(width, r.label.size());
    fmt::print("{:<{}}  {:>12}  {:>12}  {}\n", "METRIC", width, "A", "B", "CHANGE");
    std::vector<std::string> over;
    for (const auto& r : rows) {
        const auto show = [&](const std::optional<double>& v) { return v ? human(*v, r.unit) : std::string("-"); };
        const bool exceeds = fail_over && r.judged && r.a && r.b && change_percent(*r.a, *r.b) > *fail_over;
        if (exceeds) over.push_back(r.label);
        fmt::print("{:<{}}  {:>12}  {:>12}  {}{}\n", r.label, width, show(r.a), show(r.b), change_text(r),
                   exceeds ? "  <- over " + fmt::format("{}%", *fail_over) : "");
    }
    if (over.empty()) return kExitOk;
    eprint("gometrics-cli: {} increase{} over {}%: {}", over.size(), over.size() == 1 ? "" : "s",
           *fail_over, fmt::join(over, ", "));
    return kExitError;
}

}  // namespace

void add_report_commands(CLI::App& app, int& status) {
    static std::string file, file_b;
    static std::vector<std::string> exprs, only;
    static bool quiet = false;
    static std::optional<double> fail_over;

    auto* c = app.add_subcommand("check", "Evaluate check expressions (NAME[:pNN|count|max] OP VALUE) on a saved report");
    c->add_option("file", file, "A report: exec --report, GOMETRICS_REPORT or dump --format json")->required();
    c->add_option("exprs", exprs, "Checks, e.g. '/gc/heap/objects:objects <= 10'")->required();
    c->add_flag("-q,--quiet", quiet, "Print only the failed checks");
    c->callback([&status] { status = check(file, exprs, quiet); });

    auto* d = app.add_subcommand("diff", "Compare two saved reports metric by metric, with relative changes");
    d->add_option("a", file, "The baseline report")->required();
    d->add_option("b", file_b, "The new report")->required();
    d->add_option("--fail-over", fail_over, "Exit 1 when a value grew by more than this many percent (settings and limits are not judged)")
        ->transform(kValue);
    d->add_option("--only", only, "Compare only metrics whose name starts with this (repeatable)");
    d->callback([&status] { status = diff(file, file_b, fail_over, only); });
}

}  // namespace gometrics::cli
