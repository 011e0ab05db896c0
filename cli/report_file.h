// Saved reports: the JSON documents of `dump --format json`, the agent's
// GOMETRICS_REPORT and `exec --report`, loaded for `check` and `diff`.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "check.h"
#include "metrics.h"

namespace gometrics::cli {

struct ReportMetric {
    Description desc;  // name, kind, cumulative (a report has no descriptions)
    Value value;
};

struct Report {
    std::vector<ReportMetric> metrics;  // sorted by name
    // exec's peak values, by metric name ("/process/memory/rss-peak:bytes"):
    // checks and diff see them as metrics too.
    std::vector<ReportMetric> peaks;

    // The named metric (in metrics, then in peaks), or nullptr.
    const Value* find(std::string_view name) const;
    // metrics and peaks together, sorted by name.
    std::vector<ReportMetric> all() const;
};

// The metrics of a parsed document: {"metrics": [{"name","kind","cumulative",
// "value"}], "peak": {NAME: number}}. Entries of an unknown kind are skipped.
// Throws Failure(kExitError) naming `what` when the shape is wrong.
Report report_from_json(const nlohmann::ordered_json& doc, const std::string& what);

// Reads and parses a report file; Failure(kExitError) with one clear line
// when it cannot be read or is not a report.
Report load_report(const std::string& path);

// Parses every expression, or throws Failure(kExitUsage) with the parser's
// message for the first bad one (before anything runs).
std::vector<Check> parse_checks(const std::vector<std::string>& exprs);

// Evaluates the checks against report; the results, in order.
std::vector<CheckResult> run_checks(const Report& report, const std::vector<Check>& checks);

// One line per result (only the failed ones when quiet), to stdout or, never
// failing, to stderr.
void print_check_results(const std::vector<CheckResult>& results, bool quiet, bool to_stderr);

}  // namespace gometrics::cli
