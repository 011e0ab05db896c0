// Text and JSON emitters; see emitter.h.
#include "emitter.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "common.h"
#include "histstats.h"

namespace gometrics::cli {

namespace {

using json = nlohmann::ordered_json;

json number_to_json(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (std::isnan(v)) return "NaN";
    return v;
}

double number_from_json(const json& j) {
    if (j.is_number()) return j.get<double>();
    if (j.is_string()) {
        const auto s = j.get<std::string>();
        if (s == "+Inf" || s == "Inf") return std::numeric_limits<double>::infinity();
        if (s == "-Inf") return -std::numeric_limits<double>::infinity();
    }
    return std::numeric_limits<double>::quiet_NaN();
}

class TextEmitter : public Emitter {
public:
    explicit TextEmitter(std::ostream& out) : out_(out) {}
    void metric(const Description& d, const Value& v) override { out_ << d.name << ' ' << value_text(d, v) << '\n'; }

private:
    std::ostream& out_;
};

class JsonEmitter : public Emitter {
public:
    explicit JsonEmitter(std::ostream& out) : out_(out) {}
    void begin(const ProcessHeader& h) override {
        doc_ = json{{"pid", h.pid}, {"metrics", json::array()}};
        if (h.snapshot_time_ns) doc_["time_ns"] = h.snapshot_time_ns;
    }
    void metric(const Description& d, const Value& v) override {
        doc_["metrics"].push_back(
            {{"name", d.name}, {"kind", to_string(d.kind)}, {"cumulative", d.cumulative},
             {"aggregation", to_string(d.aggregation)}, {"value", value_to_json(v)}});
    }
    // Names and descriptions come from segments, which may hold bytes that
    // are not UTF-8: JSON shows them replaced rather than refusing the page.
    void end() override { out_ << dump_json(doc_); }

private:
    std::ostream& out_;
    json doc_;
};

}  // namespace

std::unique_ptr<Emitter> text_emitter(std::ostream& out) { return std::make_unique<TextEmitter>(out); }
std::unique_ptr<Emitter> json_emitter(std::ostream& out) { return std::make_unique<JsonEmitter>(out); }

nlohmann::ordered_json value_to_json(const Value& v) {
    using json = nlohmann::ordered_json;
    switch (v.kind) {
        case ValueKind::Uint64: return v.u64;
        case ValueKind::Float64: return number_to_json(v.f64);
        case ValueKind::Float64Histogram: {
            json buckets = json::array();
            for (double b : v.hist.buckets) buckets.push_back(number_to_json(b));
            return {{"buckets", buckets}, {"counts", v.hist.counts}};
        }
        case ValueKind::Bad: break;
    }
    return nullptr;
}

std::string dump_json(const nlohmann::ordered_json& doc) {
    return doc.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

Value value_from_json(const std::string& kind, const nlohmann::ordered_json& j) {
    Value v;
    if (kind == "uint64" && j.is_number_unsigned()) {
        v.kind = ValueKind::Uint64;
        v.u64 = j.get<uint64_t>();
    } else if (kind == "float64" && (j.is_number() || j.is_string())) {
        v.kind = ValueKind::Float64;
        v.f64 = number_from_json(j);
    } else if (kind == "float64-histogram" && j.is_object() && j.contains("buckets") && j.contains("counts") &&
               j["buckets"].is_array() && j["counts"].is_array() && j["buckets"].size() == j["counts"].size() + 1) {
        // What a segment's reader accepts: edges that increase, counts
        // whose total fits (quantiles and totals are computed from them).
        v.kind = ValueKind::Float64Histogram;
        for (const auto& b : j["buckets"]) {
            if (!b.is_number() && !b.is_string()) return Value{};
            const double edge = number_from_json(b);
            if (std::isnan(edge) || (!v.hist.buckets.empty() && !(edge > v.hist.buckets.back()))) return Value{};
            v.hist.buckets.push_back(edge);
        }
        uint64_t total = 0;
        for (const auto& c : j["counts"]) {
            if (!c.is_number_unsigned() || __builtin_add_overflow(total, c.get<uint64_t>(), &total)) return Value{};
            v.hist.counts.push_back(c.get<uint64_t>());
        }
    }
    return v;
}

std::string value_text(const Description&, const Value& v) {
    if (v.kind != ValueKind::Float64Histogram) return format_scalar(v);
    const uint64_t n = total_count(v.hist);
    if (n == 0) return "count=0";
    return fmt::format("count={} p50={:.6g} p90={:.6g} p99={:.6g}", n, quantile(v.hist, 0.50), quantile(v.hist, 0.90),
                       quantile(v.hist, 0.99));
}

}  // namespace gometrics::cli
