// OTLP encoding and configuration for `serve --otlp`; see otlp.h. The HTTP
// side (the Exporter) is in otlp_exporter.cpp, with the server's library.
#include "otlp.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <regex>
#include <sstream>

#include <fmt/format.h>

#include "proto_wire.h"
#include "units.h"

namespace gometrics::cli::otlp {

namespace {

using pprof::detail::ProtoWriter;

// Field numbers of opentelemetry-proto (collector/metrics/v1, metrics/v1,
// common/v1, resource/v1).
namespace field {
constexpr int kRequestResourceMetrics = 1;
constexpr int kResourceMetricsResource = 1, kResourceMetricsScopeMetrics = 2;
constexpr int kResourceAttributes = 1;
constexpr int kScopeMetricsScope = 1, kScopeMetricsMetrics = 2;
constexpr int kScopeName = 1, kScopeVersion = 2;
constexpr int kMetricName = 1, kMetricDescription = 2, kMetricUnit = 3, kMetricGauge = 5, kMetricSum = 7,
              kMetricHistogram = 9;
constexpr int kDataPoints = 1, kAggregationTemporality = 2, kIsMonotonic = 3;  // Gauge, Sum, Histogram
constexpr int kNumberStartTime = 2, kNumberTime = 3, kNumberAsDouble = 4, kNumberAsInt = 6, kNumberAttributes = 7;
constexpr int kHistStartTime = 2, kHistTime = 3, kHistCount = 4, kHistSum = 5, kHistBucketCounts = 6,
              kHistExplicitBounds = 7;
constexpr int kKeyValueKey = 1, kKeyValueValue = 2;
constexpr int kAnyString = 1, kAnyInt = 3;
}  // namespace field

constexpr uint64_t kCumulative = 2;  // AggregationTemporality

ProtoWriter key_value(const Attribute& a) {
    ProtoWriter value;
    if (const auto* s = std::get_if<std::string>(&a.value))
        value.bytes_field(field::kAnyString, *s);
    else
        value.int64_field(field::kAnyInt, std::get<int64_t>(a.value));
    ProtoWriter kv;
    kv.bytes_field(field::kKeyValueKey, a.key);
    kv.message_field(field::kKeyValueValue, value);
    return kv;
}

int64_t saturate(uint64_t v) { return v > uint64_t{INT64_MAX} ? INT64_MAX : static_cast<int64_t>(v); }

// A NumberDataPoint: a uint64 as as_int, a float64 as as_double.
ProtoWriter number_point(const Value& v, uint64_t start_ns, uint64_t time_ns, const std::vector<Attribute>& attrs) {
    ProtoWriter p;
    p.fixed64_field(field::kNumberStartTime, start_ns);
    p.fixed64_field(field::kNumberTime, time_ns);
    if (v.kind == ValueKind::Uint64)
        p.sfixed64_field(field::kNumberAsInt, saturate(v.u64));
    else
        p.double_field(field::kNumberAsDouble, v.f64);
    for (const Attribute& a : attrs) p.message_field(field::kNumberAttributes, key_value(a));
    return p;
}

ProtoWriter metric_head(std::string_view name, std::string_view description, std::string_view unit) {
    ProtoWriter m;
    m.bytes_field(field::kMetricName, name);
    if (!description.empty()) m.bytes_field(field::kMetricDescription, description);
    if (!unit.empty()) m.bytes_field(field::kMetricUnit, unit);
    return m;
}

ProtoWriter sum_of(const std::vector<ProtoWriter>& points, bool monotonic) {
    ProtoWriter s;
    for (const ProtoWriter& p : points) s.message_field(field::kDataPoints, p);
    s.uint64_field(field::kAggregationTemporality, kCumulative);
    s.bool_field(field::kIsMonotonic, monotonic);
    return s;
}

ProtoWriter gauge_of(const std::vector<ProtoWriter>& points) {
    ProtoWriter g;
    for (const ProtoWriter& p : points) g.message_field(field::kDataPoints, p);
    return g;
}

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// "%20" and the like, as OTEL_EXPORTER_OTLP_HEADERS values are W3C-baggage encoded.
std::string percent_decode(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        int v = 0;
        if (s[i] == '%' && i + 2 < s.size() &&
            std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16).ptr == s.data() + i + 3) {
            out += static_cast<char>(v);
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// "k1=v1,k2=v2": the pairs, or an error naming the variable.
Result<std::vector<std::pair<std::string, std::string>>> parse_pairs(const char* variable, std::string_view text) {
    std::vector<std::pair<std::string, std::string>> out;
    while (!text.empty()) {
        const size_t comma = std::min(text.find(','), text.size());
        const std::string_view item = trim(text.substr(0, comma));
        text.remove_prefix(std::min(comma + 1, text.size()));
        if (item.empty()) continue;
        const size_t eq = item.find('=');
        if (eq == std::string_view::npos || trim(item.substr(0, eq)).empty())
            return Result<std::vector<std::pair<std::string, std::string>>>(
                Error{fmt::format("{}: \"{}\" is not KEY=VALUE", variable, item)});
        out.emplace_back(percent_decode(trim(item.substr(0, eq))), percent_decode(trim(item.substr(eq + 1))));
    }
    return out;
}

std::optional<int64_t> parse_ms(const char* text) {
    int64_t v = 0;
    const std::string_view s(text);
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || v <= 0) return std::nullopt;
    return v;
}

}  // namespace

const std::vector<Convention> kProcessConventions = {
    {"/cpu/classes/user:cpu-seconds", "process.cpu.time", "s", "Total CPU seconds broken down by different CPU modes.",
     Convention::Kind::MonotonicSum, "cpu.mode", "user"},
    {"/cpu/classes/system:cpu-seconds", "process.cpu.time", "s",
     "Total CPU seconds broken down by different CPU modes.", Convention::Kind::MonotonicSum, "cpu.mode", "system"},
    {"/process/memory/rss:bytes", "process.memory.usage", "By", "The amount of physical memory in use.",
     Convention::Kind::UpDownSum, "", ""},
    {"/sched/threads/total:threads", "process.thread.count", "{thread}", "Process threads count.",
     Convention::Kind::UpDownSum, "", ""},
    {"/process/fds/open:fds", "process.unix.file_descriptor.count", "{file_descriptor}",
     "Number of unix file descriptors in use by the process.", Convention::Kind::UpDownSum, "", ""},
    {"/process/ctxswitches/voluntary:switches", "process.context_switches", "{context_switch}",
     "Number of times the process has been context switched.", Convention::Kind::MonotonicSum,
     "process.context_switch_type", "voluntary"},
    {"/process/ctxswitches/involuntary:switches", "process.context_switches", "{context_switch}",
     "Number of times the process has been context switched.", Convention::Kind::MonotonicSum,
     "process.context_switch_type", "involuntary"},
    {"/process/faults/major:faults", "process.paging.faults", "{fault}", "Number of page faults the process has made.",
     Convention::Kind::MonotonicSum, "process.paging.fault_type", "major"},
    {"/process/faults/minor:faults", "process.paging.faults", "{fault}", "Number of page faults the process has made.",
     Convention::Kind::MonotonicSum, "process.paging.fault_type", "minor"},
    {"/process/uptime:seconds", "process.uptime", "s", "The time the process has been running.",
     Convention::Kind::Gauge, "", ""},
};

std::optional<std::pair<std::string, std::string>> own_name(std::string_view go_name) {
    static const std::regex kGoName("^/[^:]+:[^:*/]+([*/][^:*/]+)*$");
    if (!std::regex_match(go_name.begin(), go_name.end(), kGoName)) return std::nullopt;
    const size_t colon = go_name.find(':');
    std::string name = "gometrics";
    for (char c : go_name.substr(0, colon)) name += c == '/' ? '.' : c;
    const std::string_view unit = go_name.substr(colon + 1);
    name += '.';
    for (char c : unit) {
        if (c == '/')
            name += "_per_";
        else
            name += c == '*' ? '_' : c;
    }
    std::string ucum;
    if (unit == "bytes")
        ucum = "By";
    else if (unit == "seconds" || unit == "cpu-seconds")
        ucum = "s";
    else
        ucum = "{" + std::string(unit) + "}";
    return std::pair{std::move(name), std::move(ucum)};
}

Buckets explicit_buckets(const Float64Histogram& h) {
    Buckets b;
    if (h.buckets.size() != h.counts.size() + 1 || h.counts.empty()) return b;
    const auto below = [](double edge) { return std::nextafter(edge, -std::numeric_limits<double>::infinity()); };
    // Values below a finite first edge: none, but OTLP's first bucket starts at -Inf.
    if (std::isfinite(h.buckets.front())) {
        b.bounds.push_back(below(h.buckets.front()));
        b.counts.push_back(0);
    }
    for (size_t i = 0; i < h.counts.size(); ++i) {
        b.counts.push_back(h.counts[i]);
        if (i + 1 < h.counts.size() || std::isfinite(h.buckets.back())) b.bounds.push_back(below(h.buckets[i + 1]));
    }
    if (std::isfinite(h.buckets.back())) b.counts.push_back(0);
    return b;
}

std::string encode_request(const std::vector<ProcessExport>& processes, std::string_view scope_version) {
    ProtoWriter request;
    for (const ProcessExport& pe : processes) {
        const serve::Process& p = *pe.process;
        const auto& s = p.snapshot;
        ProtoWriter resource;
        for (const Attribute& a : pe.resource) resource.message_field(field::kResourceAttributes, key_value(a));

        ProtoWriter scope;
        scope.bytes_field(field::kScopeName, "gometrics");
        if (!scope_version.empty()) scope.bytes_field(field::kScopeVersion, scope_version);
        ProtoWriter scope_metrics;
        scope_metrics.message_field(field::kScopeMetricsScope, scope);

        const uint64_t start = p.start_time_ns, now = p.time_ns;
        const size_t n = std::min(s.descs.size(), s.values.size());
        const auto value_of = [&](std::string_view name) -> const Value* {
            for (size_t i = 0; i < n; ++i)
                if (s.descs[i].name == name && s.values[i].kind == s.descs[i].kind &&
                    (s.values[i].kind == ValueKind::Uint64 || s.values[i].kind == ValueKind::Float64))
                    return &s.values[i];
            return nullptr;
        };

        // The conventions first, one metric for all the Go metrics feeding it.
        std::vector<std::string_view> done;
        for (const Convention& c : kProcessConventions) {
            if (std::find(done.begin(), done.end(), c.name) != done.end()) continue;
            done.push_back(c.name);
            std::vector<ProtoWriter> points;
            for (const Convention& part : kProcessConventions) {
                if (part.name != c.name) continue;
                const Value* v = value_of(part.go_name);
                if (!v) continue;
                std::vector<Attribute> attrs;
                if (!part.attribute_key.empty())
                    attrs.push_back({std::string(part.attribute_key), std::string(part.attribute_value)});
                points.push_back(number_point(*v, c.kind == Convention::Kind::Gauge ? 0 : start, now, attrs));
            }
            if (points.empty()) continue;
            ProtoWriter m = metric_head(c.name, c.description, c.unit);
            if (c.kind == Convention::Kind::Gauge)
                m.message_field(field::kMetricGauge, gauge_of(points));
            else
                m.message_field(field::kMetricSum, sum_of(points, c.kind == Convention::Kind::MonotonicSum));
            scope_metrics.message_field(field::kScopeMetricsMetrics, m);
        }

        for (size_t i = 0; i < n; ++i) {
            const Description& d = s.descs[i];
            const Value& v = s.values[i];
            if (v.kind == ValueKind::Bad || v.kind != d.kind) continue;
            if (std::any_of(kProcessConventions.begin(), kProcessConventions.end(),
                            [&](const Convention& c) { return c.go_name == d.name; }))
                continue;
            const auto named = own_name(d.name);
            if (!named) continue;
            ProtoWriter m = metric_head(named->first, d.description, named->second);
            if (v.kind == ValueKind::Float64Histogram) {
                // Go's histograms count since the process started; one that
                // does not (none yet) is left out rather than mislabelled.
                if (!d.cumulative || v.hist.buckets.size() != v.hist.counts.size() + 1) continue;
                const Buckets b = explicit_buckets(v.hist);
                ProtoWriter point;
                point.fixed64_field(field::kHistStartTime, start);
                point.fixed64_field(field::kHistTime, now);
                uint64_t count = 0;
                for (uint64_t c : v.hist.counts) count += c;
                point.fixed64_field(field::kHistCount, count);
                if (const auto sum = prom::exact_sum(s, d.name)) point.double_field(field::kHistSum, *sum);
                point.packed_fixed64_field(field::kHistBucketCounts, b.counts);
                point.packed_double_field(field::kHistExplicitBounds, b.bounds);
                ProtoWriter hist;
                hist.message_field(field::kDataPoints, point);
                hist.uint64_field(field::kAggregationTemporality, kCumulative);
                m.message_field(field::kMetricHistogram, hist);
            } else if (d.cumulative) {
                m.message_field(field::kMetricSum, sum_of({number_point(v, start, now, {})}, true));
            } else {
                m.message_field(field::kMetricGauge, gauge_of({number_point(v, 0, now, {})}));
            }
            scope_metrics.message_field(field::kScopeMetricsMetrics, m);
        }

        ProtoWriter rm;
        rm.message_field(field::kResourceMetricsResource, resource);
        rm.message_field(field::kResourceMetricsScopeMetrics, scope_metrics);
        request.message_field(field::kRequestResourceMetrics, rm);
    }
    return request.bytes();
}

std::vector<Attribute> resource_of(const serve::Process& p, const std::string& host_name,
                                   const std::function<const char*(const char*)>& getenv) {
    const int pid = p.snapshot.pid;
    std::vector<Attribute> attrs;
    const auto set = [&](std::string key, std::variant<std::string, int64_t> value) {
        const auto it = std::find_if(attrs.begin(), attrs.end(), [&](const Attribute& a) { return a.key == key; });
        if (it != attrs.end())
            it->value = std::move(value);
        else
            attrs.push_back({std::move(key), std::move(value)});
    };
    if (const char* extra = getenv("OTEL_RESOURCE_ATTRIBUTES"))
        if (auto pairs = parse_pairs("OTEL_RESOURCE_ATTRIBUTES", extra))
            for (auto& [k, v] : *pairs) set(k, v);

    char exe[4096];
    const ssize_t len = readlink(fmt::format("/proc/{}/exe", pid).c_str(), exe, sizeof exe - 1);
    std::string executable = p.snapshot.comm;
    if (len > 0) {
        const std::string_view path(exe, static_cast<size_t>(len));
        executable = std::string(path.substr(path.rfind('/') + 1));
        // An executable replaced on disk while running.
        if (executable.ends_with(" (deleted)")) executable.resize(executable.size() - 10);
    }
    std::string cmdline = read_file(fmt::format("/proc/{}/cmdline", pid));
    while (!cmdline.empty() && cmdline.back() == '\0') cmdline.pop_back();
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');

    const char* service = getenv("OTEL_SERVICE_NAME");
    if (service && *service)
        set("service.name", std::string(service));
    else if (std::none_of(attrs.begin(), attrs.end(), [](const Attribute& a) { return a.key == "service.name"; }))
        set("service.name", p.snapshot.comm);
    set("host.name", host_name);
    set("process.pid", int64_t{pid});
    set("process.executable.name", executable);
    if (!cmdline.empty()) set("process.command_line", cmdline);
    return attrs;
}

Result<Config> configure(const std::optional<std::string>& url, std::optional<int> interval_s,
                         const std::function<const char*(const char*)>& getenv) {
    const auto fail = [](std::string m) { return Result<Config>(Error{std::move(m)}); };
    const auto env = [&](const char* name) -> std::optional<std::string> {
        const char* v = getenv(name);
        if (!v || !*v) return std::nullopt;
        return std::string(v);
    };
    Config c;
    // scheme://host[:port][path]
    static const std::regex kUrl(R"(^([a-zA-Z][a-zA-Z0-9+.-]*)://([^/?#]+)(/[^?#]*)?$)");
    const auto with_path = [&](const std::string& u, const char* what, bool add_path) -> Result<std::string> {
        std::smatch m;
        if (!std::regex_match(u, m, kUrl))
            return Result<std::string>(Error{fmt::format("{} \"{}\": not an http:// URL", what, u)});
        if (m[1].str() != "http")
            return Result<std::string>(Error{fmt::format(
                "{} \"{}\": only http:// is supported (this build has no TLS); send to a local Collector", what, u)});
        // host[:port]: a name or IPv4 address, or an IPv6 one in brackets.
        static const std::regex kAuthority(R"(^(\[[0-9a-fA-F:.]+\]|[^\[\]:@]+)(:[0-9]{1,5})?$)");
        if (!std::regex_match(m[2].str(), kAuthority))
            return Result<std::string>(Error{fmt::format("{} \"{}\": not a host[:port] after http://", what, u)});
        std::string path = m[3].str();
        if (add_path) {
            while (!path.empty() && path.back() == '/') path.pop_back();
            path += "/v1/metrics";
        }
        return "http://" + m[2].str() + (path.empty() ? "/" : path);
    };
    Result<std::string> resolved = std::string("http://localhost:4318/v1/metrics");
    if (url && !url->empty()) {
        std::smatch m;
        const bool bare = std::regex_match(*url, m, kUrl) && (m[3].str().empty() || m[3].str() == "/");
        resolved = with_path(*url, "--otlp", bare);
    } else if (auto u = env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")) {
        resolved = with_path(*u, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", false);
    } else if (auto u2 = env("OTEL_EXPORTER_OTLP_ENDPOINT")) {
        resolved = with_path(*u2, "OTEL_EXPORTER_OTLP_ENDPOINT", true);
    }
    if (!resolved) return fail(resolved.error().message);
    c.url = *resolved;

    for (const char* name : {"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_METRICS_HEADERS"}) {
        const auto text = env(name);
        if (!text) continue;
        auto pairs = parse_pairs(name, *text);
        if (!pairs) return fail(pairs.error().message);
        for (auto& [k, v] : *pairs) {
            const auto it = std::find_if(c.headers.begin(), c.headers.end(), [&](const auto& h) { return h.first == k; });
            if (it != c.headers.end())
                it->second = v;
            else
                c.headers.emplace_back(k, v);
        }
    }
    for (const char* name : {"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"}) {
        const auto text = env(name);
        if (!text) continue;
        const auto ms = parse_ms(text->c_str());
        if (!ms) return fail(fmt::format("{}=\"{}\": expected milliseconds, a positive integer", name, *text));
        c.timeout = std::chrono::milliseconds(*ms);
    }
    if (const auto text = env("OTEL_RESOURCE_ATTRIBUTES")) {
        if (auto pairs = parse_pairs("OTEL_RESOURCE_ATTRIBUTES", *text); !pairs) return fail(pairs.error().message);
    }
    for (const char* name : {"OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION"}) {
        const auto text = env(name);
        if (!text) continue;
        if (*text != "gzip" && *text != "none") return fail(fmt::format("{}=\"{}\": expected gzip or none", name, *text));
        c.gzip = *text == "gzip";
    }
    if (interval_s) {
        c.interval = std::chrono::seconds(*interval_s);
    } else if (const auto text = env("OTEL_METRIC_EXPORT_INTERVAL")) {
        const auto ms = parse_ms(text->c_str());
        if (!ms) return fail(fmt::format("OTEL_METRIC_EXPORT_INTERVAL=\"{}\": expected milliseconds, a positive integer",
                                         *text));
        c.interval = std::chrono::milliseconds(*ms);
    }
    return c;
}

}  // namespace gometrics::cli::otlp
