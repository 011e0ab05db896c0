// Conversion of Go runtime/metrics samples to Prometheus metric families, and
// the two text renderers, for `gometrics-cli serve`. Pure: no I/O, no sockets.
//
// The conversion is the one prometheus/client_golang's Go collector applies to
// a Go program's own runtime/metrics (internal.RuntimeMetricsToProm,
// RuntimeMetricsBucketsForUnit and batchHistogram), with a configurable
// namespace in place of "go", so dashboards written for Go programs work after
// a change of prefix:
//
//   /gc/heap/allocs:bytes          (cumulative uint64) gometrics_gc_heap_allocs_bytes_total  counter
//   /memory/classes/total:bytes    (uint64)            gometrics_memory_classes_total_bytes  gauge
//   /sched/latencies:seconds       (histogram)         gometrics_sched_latencies_seconds     histogram
//
// Histograms: Go's buckets include their lower edge, Prometheus' include their
// upper one. As client_golang does, the edges are thinned out first (bytes:
// each kept edge at least 2x the previous one; seconds: at least 10x, and
// everything above 1 s merged into +Inf), a -Inf lower edge is dropped (it is
// implied), and each upper edge becomes the largest double below it, so
// `le="8.999999999999998"` holds exactly the values below 9.
//
// Histogram _sum. runtime/metrics histograms carry no sum. When the process
// publishes a cumulative scalar that totals the histogram's values, _sum is
// that value, exactly: "X/total:unit" for a histogram "X:unit" (so
// /sched/latencies:seconds takes /sched/latencies/total:seconds), and the pairs
// client_golang knows (/gc/heap/allocs-by-size:bytes takes /gc/heap/allocs:bytes,
// frees-by-size likewise). Otherwise _sum is an estimate, and here we differ from
// client_golang on purpose: it multiplies each count by its bucket's lower edge
// (a systematic underestimate, documented as such); we use the midpoint of each
// of the process's original, unthinned buckets, or the finite edge of a bucket
// that is unbounded on one side. Either way an estimated _sum is approximate
// and rate(_sum)/rate(_count) is only a rough mean.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "metrics.h"

namespace gometrics::prom {

inline constexpr std::string_view kDefaultNamespace = "gometrics";
inline constexpr std::string_view kTextContentType = "text/plain; version=0.0.4; charset=utf-8";
inline constexpr std::string_view kOpenMetricsContentType =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

// ---- Names -----------------------------------------------------------------

// The Prometheus name of a Go metric, as client_golang builds it: namespace,
// then the directory of the path with '/' and '-' turned into '_' (Go's
// path.Dir, so "." and ".." elements are resolved), then the last element with
// '-' turned into '_', then the unit with '-' and '*' turned into '_' and '/'
// into "_per_"; "_total" is appended to cumulative scalars (not histograms).
// An empty namespace is left out. nullopt when client_golang would not export
// the metric: a kind it does not understand (Bad), or a result that is not a
// valid Prometheus name ([a-zA-Z_:][a-zA-Z0-9_:]*). Names that are not in Go's
// "/path:unit" shape at all (client_golang would panic on them) are nullopt too.
[[nodiscard]] std::optional<std::string> metric_name(std::string_view go_name, ValueKind kind,
                                                     bool cumulative, std::string_view ns);

// ---- Histogram buckets -----------------------------------------------------

// client_golang's reBucketExp: keeps the first edge, then each edge at least
// min_ratio times the last kept one (for negative edges: at least that much
// closer to zero), and always the last kept candidate at the end, which is
// +Inf when the input ends with it. A leading -Inf is kept. Inputs shorter
// than two edges come back unchanged.
[[nodiscard]] std::vector<double> rebucket(const std::vector<double>& bounds, double min_ratio);

// The edges a histogram with Go unit `unit` is exported with
// (client_golang's RuntimeMetricsBucketsForUnit plus newBatchHistogram's
// -Inf removal): "bytes" is rebucketed by 2; "seconds" by 10, then the first
// edge above 1 s becomes +Inf and the rest is dropped; other units keep their
// edges. A leading -Inf is removed in every case.
[[nodiscard]] std::vector<double> reduced_bounds(const std::vector<double>& bounds, std::string_view unit);

// The counts of h summed onto the buckets of `reduced` (reduced_bounds() of
// h.buckets): one count per [reduced[j], reduced[j+1]). Counts below
// reduced[0] go to the first bucket; counts above a finite last edge are left
// out (they are still in the histogram's total). h must be well formed
// (buckets.size() == counts.size() + 1).
[[nodiscard]] std::vector<uint64_t> reduce_counts(const Float64Histogram& h, const std::vector<double>& reduced);

// ---- Family model ----------------------------------------------------------

enum class Type : uint8_t { Counter, Gauge, Histogram, Untyped };

struct Label {
    std::string name, value;
};

struct Bucket {
    double upper_bound = 0;         // inclusive, finite
    uint64_t cumulative_count = 0;  // values <= upper_bound
};

struct Histogram {
    std::vector<Bucket> buckets;  // ascending; the renderers add le="+Inf" from count
    double sum = 0;
    uint64_t count = 0;
};

// One labelled member of a family.
struct Series {
    std::vector<Label> labels;
    double value = 0;     // counter, gauge and untyped families
    Histogram histogram;  // histogram families
};

// Names and label names must be valid Prometheus names (metric_name()'s are);
// the renderers escape label values and help text but do not check names.
struct Family {
    std::string name;  // counters end in "_total", as in the text format
    std::string help;  // no HELP line when empty
    Type type = Type::Untyped;
    std::vector<Series> series;
};

// The exported histogram of h (well formed) with Go unit `unit`: reduced
// buckets with upper-inclusive edges and cumulative counts, count = all of
// h's counts, sum = exact_sum when given, else estimated_sum(h).
[[nodiscard]] Histogram to_histogram(const Float64Histogram& h, std::string_view unit,
                                     std::optional<double> exact_sum);

// Sum of count x midpoint over the buckets of h (well formed); the finite edge
// stands for a bucket unbounded on one side, and a (-Inf, +Inf) bucket adds
// nothing.
[[nodiscard]] double estimated_sum(const Float64Histogram& h);

// ---- From processes --------------------------------------------------------

// One process's metrics, as read from its segment.
struct ProcessSnapshot {
    int pid = 0;
    std::string comm;
    std::vector<Description> descs;
    std::vector<Value> values;  // values[i] is the value of descs[i]
};

// The cumulative scalar of p that totals the values of histogram hist_name,
// when p publishes one: client_golang's fixed pairs
// (/gc/heap/allocs-by-size:bytes with /gc/heap/allocs:bytes, frees likewise),
// else "X/total:unit" for "X:unit".
[[nodiscard]] std::optional<double> exact_sum(const ProcessSnapshot& p, std::string_view hist_name);

// Adds every exportable metric of p to families, with labels comm and pid
// (sorted by name, as client_golang sorts label pairs), merging into a family
// another process already added (its HELP and TYPE are kept). Skipped: values
// whose kind is Bad or differs from their description's, ill-formed
// histograms, names metric_name() rejects, and a metric whose family exists
// with another type (same name, different kind in another agent version).
// comm is made valid UTF-8 (invalid bytes become U+FFFD), since a scraper
// rejects the whole page for one invalid label value.
void add_process(std::vector<Family>& families, const ProcessSnapshot& p, std::string_view ns);

// Adds the standard process metrics every Prometheus client library exports,
// named and typed as client_golang's process collector has them (no
// namespace), with the same comm and pid labels, from what p publishes:
//   process_cpu_seconds_total      counter  /cpu/classes/user + /cpu/classes/system
//   process_resident_memory_bytes  gauge    /process/memory/rss:bytes
//   process_open_fds               gauge    /process/fds/open:fds
//   process_start_time_seconds     gauge    start_time_seconds (from the segment's header)
// A series whose source p lacks is left out. The other three of client_golang
// (process_max_fds, process_virtual_memory_bytes,
// process_virtual_memory_max_bytes) have no source in the segment yet.
void add_process_standard(std::vector<Family>& families, const ProcessSnapshot& p,
                          std::optional<double> start_time_seconds);

// ---- Rendering -------------------------------------------------------------

// Go's strconv.FormatFloat(v, 'g', -1, 64), as expfmt writes sample values:
// the shortest digits that read back as v, in exponent form when the decimal
// exponent is below -4 or at least 6 ("1e+06", "123456", "0.0001", "1e-05"),
// and "+Inf", "-Inf", "NaN"; -0 is "0".
[[nodiscard]] std::string format_float(double v);

// Text exposition format 0.0.4 (kTextContentType), as expfmt's
// MetricFamilyToText writes it: HELP (backslash and newline escaped), TYPE,
// then one line per sample; histograms as _bucket{le=...} lines ending with
// le="+Inf", then _sum and _count. Appends to out.
void render_text(std::string& out, const std::vector<Family>& families);

// OpenMetrics 1.0 (kOpenMetricsContentType), as expfmt's
// MetricFamilyToOpenMetrics writes it: counters' HELP and TYPE lines name the
// family without "_total" (a counter not ending in "_total" is typed unknown,
// as is untyped); HELP also escapes '"'; floats always show a '.' or an
// exponent ("1.0"); bucket counts and _count are integers; no UNIT lines (they
// are optional); ends with "# EOF". Appends to out.
void render_openmetrics(std::string& out, const std::vector<Family>& families);

// ---- Content negotiation ---------------------------------------------------

// Whether a scrape with this Accept header gets OpenMetrics rather than the
// text format, as expfmt.NegotiateIncludingOpenMetrics decides, minus
// protobuf, which we do not serve: media ranges by descending q (ties in
// header order); the first that is text/plain (version 0.0.4 or none) means
// text, application/openmetrics-text (version 0.0.1, 1.0.0 or none) means
// OpenMetrics; nothing matching means text. Unlike expfmt, a range with q=0 is
// refused, as HTTP says.
[[nodiscard]] bool accepts_openmetrics(std::string_view accept_header);

}  // namespace gometrics::prom
