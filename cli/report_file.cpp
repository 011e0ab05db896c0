// Loading saved reports; see report_file.h.
#include "report_file.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "common.h"
#include "emitter.h"

namespace gometrics::cli {

namespace {

bool by_name(const ReportMetric& a, const ReportMetric& b) { return a.desc.name < b.desc.name; }

const ReportMetric* find_in(const std::vector<ReportMetric>& v, std::string_view name) {
    const auto it = std::lower_bound(v.begin(), v.end(), name,
                                     [](const ReportMetric& m, std::string_view n) { return m.desc.name < n; });
    return it != v.end() && it->desc.name == name ? &*it : nullptr;
}

ValueKind kind_from(const std::string& k) {
    if (k == "uint64") return ValueKind::Uint64;
    if (k == "float64") return ValueKind::Float64;
    if (k == "float64-histogram") return ValueKind::Float64Histogram;
    return ValueKind::Bad;
}

}  // namespace

const Value* Report::find(std::string_view name) const {
    if (const ReportMetric* m = find_in(metrics, name)) return &m->value;
    if (const ReportMetric* m = find_in(peaks, name)) return &m->value;
    return nullptr;
}

std::vector<ReportMetric> Report::all() const {
    std::vector<ReportMetric> out = metrics;
    for (const auto& p : peaks)
        if (!find_in(metrics, p.desc.name)) out.push_back(p);
    std::sort(out.begin(), out.end(), by_name);
    return out;
}

namespace {

Report parse_report(const nlohmann::ordered_json& doc, const std::string& what) {
    if (!doc.is_object() || !doc.contains("metrics") || !doc["metrics"].is_array())
        throw Failure(kExitError, fmt::format("{}: not a gometrics report (no \"metrics\" array)", what));
    Report r;
    size_t index = 0;
    for (const auto& m : doc["metrics"]) {
        ++index;
        if (!m.is_object() || !m.contains("name") || !m["name"].is_string() || !m.contains("kind") ||
            !m["kind"].is_string() || !m.contains("value"))
            throw Failure(kExitError, fmt::format("{}: malformed metric entry #{} (an object with a name, a kind and a "
                                                  "value expected)", what, index));
        ReportMetric rm;
        rm.desc.name = m["name"].get<std::string>();
        rm.desc.kind = kind_from(m["kind"].get<std::string>());
        rm.desc.cumulative = m.value("cumulative", false);
        // Absent from the reports of older agents: Unknown, and readers fall back on their own rule.
        if (m.contains("aggregation") && m["aggregation"].is_string())
            rm.desc.aggregation = aggregation_from(m["aggregation"].get<std::string>());
        rm.value = value_from_json(m["kind"].get<std::string>(), m["value"]);
        if (rm.desc.kind == ValueKind::Bad) continue;  // a kind from a newer agent: not comparable here
        if (rm.value.kind == ValueKind::Bad)
            throw Failure(kExitError, fmt::format("{}: {} has a malformed value", what, rm.desc.name));
        r.metrics.push_back(std::move(rm));
    }
    if (doc.contains("peak") && doc["peak"].is_object()) {
        for (const auto& [name, v] : doc["peak"].items()) {
            if (!v.is_number_unsigned()) continue;  // null: not known
            ReportMetric rm;
            rm.desc.name = name;
            rm.desc.kind = ValueKind::Uint64;
            rm.desc.aggregation = Aggregation::Max;  // a peak of the tree's processes
            rm.value.kind = ValueKind::Uint64;
            rm.value.u64 = v.get<uint64_t>();
            r.peaks.push_back(std::move(rm));
        }
    }
    std::sort(r.metrics.begin(), r.metrics.end(), by_name);
    std::sort(r.peaks.begin(), r.peaks.end(), by_name);
    for (size_t i = 1; i < r.metrics.size(); ++i)
        if (r.metrics[i].desc.name == r.metrics[i - 1].desc.name)
            throw Failure(kExitError, fmt::format("{}: {} appears twice", what, r.metrics[i].desc.name));
    return r;
}

}  // namespace

Report report_from_json(const nlohmann::ordered_json& doc, const std::string& what) {
    try {
        return parse_report(doc, what);
    } catch (const nlohmann::ordered_json::exception& e) {  // a field of the wrong type
        throw Failure(kExitError, fmt::format("{}: malformed report ({})", what, e.what()));
    }
}

Report load_report(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw Failure(kExitError, fmt::format("{}: {}", path, std::strerror(errno)));
    // A report nests five deep. The parser recurses on nesting: a file
    // nested thousands deep would overflow the stack, so it stops early.
    constexpr int kMaxDepth = 32;
    const auto bounded = [&](int depth, nlohmann::ordered_json::parse_event_t, nlohmann::ordered_json&) {
        if (depth > kMaxDepth)
            throw Failure(kExitError, fmt::format("{}: not a gometrics report (nested over {} deep)", path, kMaxDepth));
        return true;
    };
    nlohmann::ordered_json doc = nlohmann::ordered_json::parse(in, bounded, false);
    if (doc.is_discarded()) throw Failure(kExitError, fmt::format("{}: not valid JSON", path));
    return report_from_json(doc, path);
}


std::vector<Check> parse_checks(const std::vector<std::string>& exprs) {
    std::vector<Check> out;
    for (const auto& e : exprs) {
        auto parsed = parse_check(e);
        if (auto* what = std::get_if<std::string>(&parsed)) throw Failure(kExitUsage, *what);
        out.push_back(std::get<Check>(std::move(parsed)));
    }
    return out;
}

std::vector<CheckResult> run_checks(const Report& report, const std::vector<Check>& checks) {
    std::vector<CheckResult> results;
    for (const auto& c : checks) results.push_back(evaluate(c, report.find(c.name)));
    return results;
}

void print_check_results(const std::vector<CheckResult>& results, bool quiet, bool to_stderr) {
    for (const CheckResult& r : results) {
        if (r.passed && quiet) continue;
        if (to_stderr)
            eprint("{}", r.message);
        else
            fmt::print("{}\n", r.message);
    }
}

}  // namespace gometrics::cli
