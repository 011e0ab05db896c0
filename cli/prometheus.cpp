// Conversion of Go runtime/metrics samples to Prometheus metric families, and
// the two text renderers, for `gometrics-cli serve`.
#include "prometheus.h"

#include "units.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <utility>

namespace gometrics::prom {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr std::string_view kTotalSuffix = "_total";

// ---- Names -----------------------------------------------------------------

[[nodiscard]] std::string underscore(std::string_view s, std::string_view chars) {
    std::string out(s);
    std::replace_if(out.begin(), out.end(), [&](char c) { return chars.find(c) != chars.npos; }, '_');
    return out;
}

// "bytes/second" -> "bytes_per_second", "cpu*seconds" -> "cpu_seconds".
[[nodiscard]] std::string unit_suffix(std::string_view unit) {
    std::string out;
    for (char c : unit) {
        if (c == '/')
            out += "_per_";
        else
            out += (c == '-' || c == '*') ? '_' : c;
    }
    return out;
}

// Go's path.Clean, which path.Dir applies: no empty or "." elements, and each
// ".." removes the element before it (or stays, leading a relative path).
[[nodiscard]] std::string clean_path(std::string_view p) {
    const bool rooted = !p.empty() && p.front() == '/';
    std::vector<std::string_view> parts;
    while (!p.empty()) {
        const size_t slash = std::min(p.find('/'), p.size());
        const std::string_view part = p.substr(0, slash);
        p.remove_prefix(std::min(slash + 1, p.size()));
        if (part.empty() || part == ".") continue;
        if (part != "..")
            parts.push_back(part);
        else if (!parts.empty() && parts.back() != "..")
            parts.pop_back();
        else if (!rooted)
            parts.push_back(part);
    }
    std::string out = rooted ? "/" : "";
    for (size_t i = 0; i < parts.size(); ++i) {
        if (i > 0) out += '/';
        out += parts[i];
    }
    return out.empty() ? "." : out;
}

// Go's path.Dir: everything before the last '/', cleaned.
[[nodiscard]] std::string go_path_dir(std::string_view p) {
    const size_t slash = p.rfind('/');
    return clean_path(slash == p.npos ? std::string_view{} : p.substr(0, slash + 1));
}

// Go's path.Base: the last element, trailing slashes ignored.
[[nodiscard]] std::string_view go_path_base(std::string_view p) {
    while (p.size() > 1 && p.back() == '/') p.remove_suffix(1);
    const size_t slash = p.rfind('/');
    return slash == p.npos || p.size() == 1 ? p : p.substr(slash + 1);
}

// Prometheus' legacy name rule, the one client_golang checks by default and
// the only one the 0.0.4 text format can carry unquoted.
[[nodiscard]] bool valid_metric_name(std::string_view n) {
    const auto word = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    };
    const auto digit = [](char c) { return c >= '0' && c <= '9'; };
    return !n.empty() && word(n.front()) &&
           std::all_of(n.begin() + 1, n.end(), [&](char c) { return word(c) || digit(c); });
}

// ---- Histograms ------------------------------------------------------------

// client_golang's treatment of seconds: everything above 1 s is one bucket,
// so the first edge above 1 s becomes +Inf and the edges after it go.
void merge_above_one_second(std::vector<double>& b) {
    const auto above = std::find_if(b.begin(), b.end(), [](double e) { return e > 1; });
    if (above == b.end()) return;
    *above = kInf;
    b.erase(above + 1, b.end());
}

[[nodiscard]] bool well_formed(const Float64Histogram& h) {
    return h.buckets.size() == h.counts.size() + 1;
}

// Where the values of [lo, hi) are assumed to lie for estimated_sum().
[[nodiscard]] double representative(double lo, double hi) {
    if (std::isfinite(lo) && std::isfinite(hi)) return lo + (hi - lo) / 2;
    if (std::isfinite(lo)) return lo;
    if (std::isfinite(hi)) return hi;
    return 0;
}

// ---- From processes --------------------------------------------------------

// client_golang's help: the description, then where it came from.
[[nodiscard]] std::string help_of(const Description& d) {
    return d.description + " Sourced from " + d.name + ".";
}

[[nodiscard]] Type type_of(const Description& d) {
    if (d.kind == ValueKind::Float64Histogram) return Type::Histogram;
    return d.cumulative ? Type::Counter : Type::Gauge;
}

[[nodiscard]] bool is_scalar(ValueKind k) {
    return k == ValueKind::Uint64 || k == ValueKind::Float64;
}

[[nodiscard]] double scalar(const Value& v) {
    return v.kind == ValueKind::Uint64 ? static_cast<double>(v.u64) : v.f64;
}

// Length of the valid UTF-8 sequence s starts with (Unicode's well-formed
// byte sequences: no overlong forms, no surrogates, nothing above U+10FFFF);
// 0 when it starts with none.
[[nodiscard]] size_t utf8_sequence_length(std::string_view s) {
    const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
    const unsigned char lead = byte(0);
    if (lead < 0x80) return 1;
    size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
    if (lead >= 0xC2 && lead <= 0xDF) {
        n = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        n = 3;
        if (lead == 0xE0) lo = 0xA0;
        if (lead == 0xED) hi = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        n = 4;
        if (lead == 0xF0) lo = 0x90;
        if (lead == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (s.size() < n || byte(1) < lo || byte(1) > hi) return 0;
    for (size_t i = 2; i < n; ++i)
        if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
    return n;
}

[[nodiscard]] std::string to_valid_utf8(std::string_view s) {
    std::string out;
    while (!s.empty()) {
        const size_t n = utf8_sequence_length(s);
        if (n == 0)
            out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
        else
            out += s.substr(0, n);
        s.remove_prefix(std::max<size_t>(n, 1));
    }
    return out;
}

// The family called name, added with d's help if missing; nullptr when it
// exists with another type, since one family cannot mix types.
[[nodiscard]] Family* family_for(std::vector<Family>& families, const std::string& name, Type type,
                                 const Description& d) {
    const auto it = std::find_if(families.begin(), families.end(), [&](const Family& f) { return f.name == name; });
    if (it != families.end()) return it->type == type ? &*it : nullptr;
    families.push_back(Family{.name = name, .help = help_of(d), .type = type, .series = {}});
    return &families.back();
}

// ---- Rendering -------------------------------------------------------------

// Escapes backslash and newline, and '"' when quote is set: what the formats
// require in label values (always) and in HELP text (OpenMetrics only).
void append_escaped(std::string& out, std::string_view s, bool quote) {
    for (char c : s) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else if (c == '"' && quote)
            out += "\\\"";
        else
            out += c;
    }
}

// OpenMetrics floats must not look like integers: "1.0", not "1".
[[nodiscard]] std::string openmetrics_float(double v) {
    std::string s = format_float(v);
    if (std::isfinite(v) && s.find_first_of(".e") == s.npos) s += ".0";
    return s;
}

[[nodiscard]] std::string real_text(double v, bool om) {
    return om ? openmetrics_float(v) : format_float(v);
}

// Counts are integers in OpenMetrics; the text format writes every value as a
// float, so large counts come out as "1.234567e+06" there, as from expfmt.
[[nodiscard]] std::string count_text(uint64_t c, bool om) {
    return om ? std::to_string(c) : format_float(static_cast<double>(c));
}

[[nodiscard]] bool ends_with_total(std::string_view name) {
    return name.ends_with(kTotalSuffix);
}

// OpenMetrics names a counter family without the "_total" its samples carry.
[[nodiscard]] std::string_view family_name(const Family& f, bool om) {
    std::string_view n = f.name;
    if (om && f.type == Type::Counter && ends_with_total(n)) n.remove_suffix(kTotalSuffix.size());
    return n;
}

[[nodiscard]] std::string_view type_word(const Family& f, bool om) {
    switch (f.type) {
        case Type::Counter: return !om || ends_with_total(f.name) ? "counter" : "unknown";
        case Type::Gauge: return "gauge";
        case Type::Histogram: return "histogram";
        case Type::Untyped: return om ? "unknown" : "untyped";
    }
    return "unknown";
}

// NAME{labels[,le="LE"]} VALUE, the label list left out when empty.
void append_sample(std::string& out, std::string_view name, std::string_view suffix, const std::vector<Label>& labels,
                   std::string_view le, std::string_view value) {
    out += name;
    out += suffix;
    char sep = '{';
    for (const Label& l : labels) {
        out += sep;
        out += l.name;
        out += "=\"";
        append_escaped(out, l.value, true);
        out += '"';
        sep = ',';
    }
    if (!le.empty()) {
        out += sep;
        out += "le=\"";
        out += le;
        out += '"';
    }
    if (!labels.empty() || !le.empty()) out += '}';
    out += ' ';
    out += value;
    out += '\n';
}

void append_histogram(std::string& out, const std::string& name, const Series& s, bool om) {
    for (const Bucket& b : s.histogram.buckets)
        append_sample(out, name, "_bucket", s.labels, real_text(b.upper_bound, om), count_text(b.cumulative_count, om));
    append_sample(out, name, "_bucket", s.labels, "+Inf", count_text(s.histogram.count, om));
    append_sample(out, name, "_sum", s.labels, {}, real_text(s.histogram.sum, om));
    append_sample(out, name, "_count", s.labels, {}, count_text(s.histogram.count, om));
}

void append_family(std::string& out, const Family& f, bool om) {
    const std::string_view name = family_name(f, om);
    if (!f.help.empty()) {
        out += "# HELP ";
        out += name;
        out += ' ';
        append_escaped(out, f.help, om);
        out += '\n';
    }
    out += "# TYPE ";
    out += name;
    out += ' ';
    out += type_word(f, om);
    out += '\n';
    for (const Series& s : f.series) {
        if (f.type == Type::Histogram)
            append_histogram(out, f.name, s, om);
        else
            append_sample(out, f.name, {}, s.labels, {}, real_text(s.value, om));
    }
}

// ---- Content negotiation ---------------------------------------------------

struct MediaRange {
    std::string_view type;     // "text/plain"
    std::string_view version;  // the version parameter, "" when absent
    double q = 1;
};

[[nodiscard]] std::string_view trim(std::string_view s) {
    const size_t first = s.find_first_not_of(" \t");
    if (first == s.npos) return {};
    return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

// Splits s at the first sep: returns what precedes it, leaves the rest in s.
[[nodiscard]] std::string_view next_token(std::string_view& s, char sep) {
    const size_t at = std::min(s.find(sep), s.size());
    const std::string_view token = s.substr(0, at);
    s.remove_prefix(std::min(at + 1, s.size()));
    return token;
}

// "type/subtype;version=V;q=Q"; an unparsable q counts as 0, as in goautoneg.
[[nodiscard]] MediaRange parse_media_range(std::string_view range) {
    MediaRange m;
    m.type = trim(next_token(range, ';'));
    while (!range.empty()) {
        std::string_view value = next_token(range, ';');
        const std::string_view key = trim(next_token(value, '='));
        value = trim(value);
        if (key == "q") {
            const auto parsed = std::from_chars(value.data(), value.data() + value.size(), m.q);
            if (parsed.ec != std::errc{} || !(m.q > 0)) m.q = 0;  // NaN too: it would break the sort
        } else if (key == "version") {
            m.version = value;
        }
    }
    return m;
}

}  // namespace

std::optional<std::string> metric_name(std::string_view go_name, ValueKind kind, bool cumulative,
                                       std::string_view ns) {
    if (kind != ValueKind::Uint64 && kind != ValueKind::Float64 && kind != ValueKind::Float64Histogram)
        return std::nullopt;
    const size_t colon = go_name.find(':');
    if (colon == go_name.npos || !go_name.starts_with('/')) return std::nullopt;
    const std::string_view key = go_name.substr(0, colon);

    const std::string subsystem = underscore(go_path_dir(key.substr(1)), "/-");
    std::string name = underscore(go_path_base(key), "-") + "_" + unit_suffix(go_name.substr(colon + 1));
    if (cumulative && kind != ValueKind::Float64Histogram) name += kTotalSuffix;

    std::string full = ns.empty() ? "" : std::string(ns) + "_";
    full += subsystem + "_" + name;
    if (!valid_metric_name(full)) return std::nullopt;
    return full;
}

std::vector<double> rebucket(const std::vector<double>& bounds, double min_ratio) {
    if (bounds.empty()) return {};
    std::vector<double> out;
    double kept = bounds[0];
    for (size_t i = 1; i < bounds.size(); ++i) {
        // Positive edges grow away from zero, negative ones shrink towards it;
        // a leading -Inf admits any next edge (-Inf / ratio is -Inf).
        const double next = kept >= 0 ? kept * min_ratio : kept / min_ratio;
        if (bounds[i] < next) continue;
        out.push_back(kept);
        kept = bounds[i];
    }
    out.push_back(kept);
    return out;
}

std::vector<double> reduced_bounds(const std::vector<double>& bounds, std::string_view unit) {
    std::vector<double> b = unit == "bytes" ? rebucket(bounds, 2) : unit == "seconds" ? rebucket(bounds, 10) : bounds;
    if (unit == "seconds") merge_above_one_second(b);
    // Prometheus buckets count everything up to their edge: -Inf is implied.
    if (!b.empty() && b.front() == -kInf) b.erase(b.begin());
    return b;
}

std::vector<uint64_t> reduce_counts(const Float64Histogram& h, const std::vector<double>& reduced) {
    if (reduced.size() < 2) return {};
    std::vector<uint64_t> out(reduced.size() - 1);
    size_t j = 0;
    for (size_t i = 0; i < h.counts.size() && j < out.size(); ++i) {
        out[j] += h.counts[i];
        if (h.buckets[i + 1] == reduced[j + 1]) ++j;
    }
    return out;
}

double estimated_sum(const Float64Histogram& h) {
    double sum = 0;
    for (size_t i = 0; i < h.counts.size(); ++i)
        if (h.counts[i] != 0) sum += static_cast<double>(h.counts[i]) * representative(h.buckets[i], h.buckets[i + 1]);
    return sum;
}

Histogram to_histogram(const Float64Histogram& h, std::string_view unit, std::optional<double> exact_sum) {
    const std::vector<double> bounds = reduced_bounds(h.buckets, unit);
    const std::vector<uint64_t> counts = reduce_counts(h, bounds);
    Histogram out;
    uint64_t cumulative = 0;
    for (size_t i = 0; i < counts.size() && bounds[i + 1] != kInf; ++i) {
        cumulative += counts[i];
        // Go's bucket excludes its upper edge, Prometheus' includes it: the
        // largest double below the edge bounds the same set of values.
        out.buckets.push_back({std::nextafter(bounds[i + 1], bounds[i]), cumulative});
    }
    out.count = std::accumulate(h.counts.begin(), h.counts.end(), uint64_t{0});
    out.sum = exact_sum ? *exact_sum : estimated_sum(h);
    return out;
}

void add_process(std::vector<Family>& families, const ProcessSnapshot& p, std::string_view ns) {
    const std::vector<Label> labels{{"comm", to_valid_utf8(p.comm)}, {"pid", std::to_string(p.pid)}};
    for (size_t i = 0; i < std::min(p.descs.size(), p.values.size()); ++i) {
        const Description& d = p.descs[i];
        const Value& v = p.values[i];
        if (v.kind == ValueKind::Bad || v.kind != d.kind) continue;
        if (v.kind == ValueKind::Float64Histogram && !well_formed(v.hist)) continue;
        const std::optional<std::string> name = metric_name(d.name, d.kind, d.cumulative, ns);
        if (!name) continue;
        Family* f = family_for(families, *name, type_of(d), d);
        if (!f) continue;
        Series s;
        s.labels = labels;
        if (f->type == Type::Histogram)
            s.histogram = to_histogram(v.hist, cli::unit_of(d.name), exact_sum(p, d.name));
        else
            s.value = scalar(v);
        f->series.push_back(std::move(s));
    }
}

std::optional<double> exact_sum(const ProcessSnapshot& p, std::string_view hist_name) {
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 2> kPairs{{
        {"/gc/heap/allocs-by-size:bytes", "/gc/heap/allocs:bytes"},
        {"/gc/heap/frees-by-size:bytes", "/gc/heap/frees:bytes"},
    }};
    const auto pair = std::find_if(kPairs.begin(), kPairs.end(), [&](const auto& e) { return e.first == hist_name; });
    std::string total;
    if (pair != kPairs.end()) {
        total = pair->second;
    } else {
        const size_t colon = hist_name.find(':');
        total = std::string(hist_name.substr(0, colon)) + "/total" + std::string(hist_name.substr(colon));
    }
    for (size_t i = 0; i < std::min(p.descs.size(), p.values.size()); ++i) {
        const Description& d = p.descs[i];
        if (d.name == total && d.cumulative && is_scalar(d.kind) && p.values[i].kind == d.kind)
            return scalar(p.values[i]);
    }
    return std::nullopt;
}

namespace {

// The scalar value of the metric called name in p, if p publishes it.
std::optional<double> scalar_of(const ProcessSnapshot& p, std::string_view name) {
    for (size_t i = 0; i < std::min(p.descs.size(), p.values.size()); ++i)
        if (p.descs[i].name == name && is_scalar(p.descs[i].kind) && p.values[i].kind == p.descs[i].kind)
            return scalar(p.values[i]);
    return std::nullopt;
}

void add_standard(std::vector<Family>& families, std::string_view name, std::string_view help, Type type,
                  const std::vector<Label>& labels, std::optional<double> value) {
    if (!value) return;
    auto it = std::find_if(families.begin(), families.end(), [&](const Family& f) { return f.name == name; });
    if (it == families.end()) {
        families.push_back(Family{.name = std::string(name), .help = std::string(help), .type = type, .series = {}});
        it = families.end() - 1;
    } else if (it->type != type) {
        return;
    }
    it->series.push_back(Series{.labels = labels, .value = *value, .histogram = {}});
}

}  // namespace

void add_process_standard(std::vector<Family>& families, const ProcessSnapshot& p,
                          std::optional<double> start_time_seconds) {
    const std::vector<Label> labels{{"comm", to_valid_utf8(p.comm)}, {"pid", std::to_string(p.pid)}};
    const auto user = scalar_of(p, "/cpu/classes/user:cpu-seconds");
    const auto system = scalar_of(p, "/cpu/classes/system:cpu-seconds");
    add_standard(families, "process_cpu_seconds_total",
                 "Total user and system CPU time of the process in seconds (getrusage, as /proc/PID/stat counts it).",
                 Type::Counter, labels, user && system ? std::optional(*user + *system) : std::nullopt);
    add_standard(families, "process_open_fds", "Number of open file descriptors of the process.", Type::Gauge,
                 labels, scalar_of(p, "/process/fds/open:fds"));
    add_standard(families, "process_max_fds", "Maximum number of open file descriptors.", Type::Gauge, labels,
                 scalar_of(p, "/process/fds/limit:fds"));
    add_standard(families, "process_resident_memory_bytes", "Resident memory size of the process in bytes.",
                 Type::Gauge, labels, scalar_of(p, "/process/memory/rss:bytes"));
    add_standard(families, "process_virtual_memory_bytes", "Virtual memory size of the process in bytes.",
                 Type::Gauge, labels, scalar_of(p, "/process/memory/virtual:bytes"));
    add_standard(families, "process_virtual_memory_max_bytes",
                 "Maximum amount of virtual memory available in bytes.", Type::Gauge, labels,
                 scalar_of(p, "/process/memory/virtual-limit:bytes"));
    add_standard(families, "process_start_time_seconds",
                 "Start time of the process since the Unix epoch in seconds.", Type::Gauge, labels,
                 start_time_seconds);
}

std::string format_float(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (v == 0) return "0";

    // "[-]d[.ddd]e±XX" with the shortest digits that read back as v.
    std::array<char, 32> buf{};
    const auto end = std::to_chars(buf.data(), buf.data() + buf.size(), std::abs(v), std::chars_format::scientific).ptr;
    const std::string_view sci(buf.data(), static_cast<size_t>(end - buf.data()));
    const size_t e = sci.find('e');
    std::string digits(1, sci[0]);
    if (e > 1) digits += sci.substr(2, e - 2);
    int exp = 0;
    std::from_chars(sci.data() + e + 2, end, exp);
    if (sci[e + 1] == '-') exp = -exp;

    std::string out = v < 0 ? "-" : "";
    if (exp < -4 || exp >= 6) {
        out += digits[0];
        if (digits.size() > 1) out += "." + digits.substr(1);
        out += exp < 0 ? "e-" : "e+";
        if (std::abs(exp) < 10) out += '0';
        out += std::to_string(std::abs(exp));
    } else if (exp < 0) {
        out += "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    } else {
        const size_t int_digits = static_cast<size_t>(exp) + 1;
        if (digits.size() <= int_digits)
            out += digits + std::string(int_digits - digits.size(), '0');
        else
            out += digits.substr(0, int_digits) + "." + digits.substr(int_digits);
    }
    return out;
}

void render_text(std::string& out, const std::vector<Family>& families) {
    for (const Family& f : families) append_family(out, f, false);
}

void render_openmetrics(std::string& out, const std::vector<Family>& families) {
    for (const Family& f : families) append_family(out, f, true);
    out += "# EOF\n";
}

bool accepts_openmetrics(std::string_view accept_header) {
    std::vector<MediaRange> ranges;
    while (!accept_header.empty()) ranges.push_back(parse_media_range(next_token(accept_header, ',')));
    std::stable_sort(ranges.begin(), ranges.end(), [](const MediaRange& a, const MediaRange& b) { return a.q > b.q; });
    for (const MediaRange& r : ranges) {
        if (r.q <= 0) break;
        if (r.type == "text/plain" && (r.version.empty() || r.version == "0.0.4")) return false;
        if (r.type == "application/openmetrics-text" &&
            (r.version.empty() || r.version == "0.0.1" || r.version == "1.0.0"))
            return true;
    }
    return false;
}

}  // namespace gometrics::prom
