// Prometheus conversion and rendering: names, buckets, sums and pages checked
// against prometheus/client_golang's own tests and real scrapes of Go programs.
#include "prometheus.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

using namespace gometrics;
using namespace gometrics::prom;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Go's runtime/metrics bucket edges for allocs-by-size: its size classes
// (runtime/sizeclasses.go) shifted up by one byte, from 1 to +Inf.
std::vector<double> go_size_class_edges() {
    const std::vector<double> sizes{8,     16,    24,    32,    48,    64,    80,    96,    112,   128,   144,  160,
                                    176,   192,   208,   224,   240,   256,   288,   320,   352,   384,   416,  448,
                                    480,   512,   576,   640,   704,   768,   896,   1024,  1152,  1280,  1408, 1536,
                                    1792,  2048,  2304,  2688,  3072,  3200,  3456,  4096,  4864,  5376,  6144, 6528,
                                    6784,  6912,  8192,  9472,  9728,  10240, 10880, 12288, 13568, 14336, 16384, 18432,
                                    19072, 20480, 21760, 24576, 27264, 28672, 32768};
    std::vector<double> edges{1};
    for (double s : sizes) edges.push_back(s + 1);
    edges.push_back(kInf);
    return edges;
}

// Go's (1.20+) time histogram edges in seconds, as timeHistogramMetricsBuckets
// computes them: -Inf, 4 sub-buckets of 64 ns below 256 ns, then 4 sub-buckets
// per power of two up to 2^47 ns, then +Inf.
std::vector<double> go_time_edges() {
    std::vector<double> edges{-kInf};
    for (uint64_t j = 0; j < 4; ++j) edges.push_back(static_cast<double>(j << 6) / 1e9);
    for (unsigned i = 9; i < 48; ++i)
        for (uint64_t j = 0; j < 4; ++j)
            edges.push_back(static_cast<double>((uint64_t{1} << (i - 1)) | (j << (i - 3))) / 1e9);
    edges.push_back(static_cast<double>(uint64_t{1} << 47) / 1e9);
    edges.push_back(kInf);
    return edges;
}

std::vector<double> upper_bounds(const Histogram& h) {
    std::vector<double> out;
    for (const Bucket& b : h.buckets) out.push_back(b.upper_bound);
    return out;
}

std::vector<uint64_t> cumulative_counts(const Histogram& h) {
    std::vector<uint64_t> out;
    for (const Bucket& b : h.buckets) out.push_back(b.cumulative_count);
    return out;
}

Value u64(uint64_t v) { return Value{.kind = ValueKind::Uint64, .u64 = v, .f64 = 0, .hist = {}}; }
Value f64(double v) { return Value{.kind = ValueKind::Float64, .u64 = 0, .f64 = v, .hist = {}}; }
Value hist(std::vector<uint64_t> counts, std::vector<double> buckets) {
    return Value{.kind = ValueKind::Float64Histogram, .u64 = 0, .f64 = 0,
                 .hist = {.counts = std::move(counts), .buckets = std::move(buckets)}};
}

Description desc(std::string name, ValueKind kind, bool cumulative, std::string text = "Something.") {
    return Description{.name = std::move(name), .description = std::move(text), .kind = kind,
                       .cumulative = cumulative};
}

const Family* find(const std::vector<Family>& families, std::string_view name) {
    for (const Family& f : families)
        if (f.name == name) return &f;
    return nullptr;
}

std::string text_of(const std::vector<Family>& families) {
    std::string out;
    render_text(out, families);
    return out;
}

std::string openmetrics_of(const std::vector<Family>& families) {
    std::string out;
    render_openmetrics(out, families);
    return out;
}

}  // namespace

TEST_CASE("metric_name: client_golang's TestRuntimeMetricsToProm cases", "[prometheus]") {
    CHECK(metric_name("/memory/live:bytes", ValueKind::Uint64, false, "go") == "go_memory_live_bytes");
    CHECK(metric_name("/memory/allocs:bytes", ValueKind::Uint64, true, "go") == "go_memory_allocs_bytes_total");
    CHECK(metric_name("/memory/alloc-rate:bytes/second", ValueKind::Float64, false, "go") ==
          "go_memory_alloc_rate_bytes_per_second");
    CHECK(metric_name("/gc/time:cpu*seconds", ValueKind::Float64, true, "go") == "go_gc_time_cpu_seconds_total");
    CHECK(metric_name("/this/is/a/very/deep/metric:metrics", ValueKind::Float64, false, "go") ==
          "go_this_is_a_very_deep_metric_metrics");
    CHECK_FALSE(metric_name("/this*is*an*invalid...:\xC2\xB5name", ValueKind::Uint64, false, "go"));
    CHECK_FALSE(metric_name("/this/is/a/valid/name:objects", ValueKind::Bad, false, "go"));
}

TEST_CASE("metric_name: client_golang's expected names for Go's own metrics", "[prometheus]") {
    struct Case {
        const char* go;
        ValueKind kind;
        bool cumulative;
        const char* prom;
    };
    // From client_golang's go_collector_metrics_go1XX_test.go.
    const Case cases[] = {
        {"/cgo/go-to-c-calls:calls", ValueKind::Uint64, true, "go_cgo_go_to_c_calls_calls_total"},
        {"/cpu/classes/gc/mark/assist:cpu-seconds", ValueKind::Float64, true,
         "go_cpu_classes_gc_mark_assist_cpu_seconds_total"},
        {"/gc/cycles/total:gc-cycles", ValueKind::Uint64, true, "go_gc_cycles_total_gc_cycles_total"},
        {"/gc/gogc:percent", ValueKind::Uint64, false, "go_gc_gogc_percent"},
        {"/gc/heap/allocs-by-size:bytes", ValueKind::Float64Histogram, true, "go_gc_heap_allocs_by_size_bytes"},
        {"/gc/heap/allocs:bytes", ValueKind::Uint64, true, "go_gc_heap_allocs_bytes_total"},
        {"/gc/heap/objects:objects", ValueKind::Uint64, false, "go_gc_heap_objects_objects"},
        {"/gc/limiter/last-enabled:gc-cycle", ValueKind::Uint64, false, "go_gc_limiter_last_enabled_gc_cycle"},
        {"/gc/pauses:seconds", ValueKind::Float64Histogram, true, "go_gc_pauses_seconds"},
        {"/godebug/non-default-behavior/x509sha1:events", ValueKind::Uint64, true,
         "go_godebug_non_default_behavior_x509sha1_events_total"},
        {"/memory/classes/heap/objects:bytes", ValueKind::Uint64, false, "go_memory_classes_heap_objects_bytes"},
        {"/memory/classes/os-stacks:bytes", ValueKind::Uint64, false, "go_memory_classes_os_stacks_bytes"},
        {"/memory/classes/total:bytes", ValueKind::Uint64, false, "go_memory_classes_total_bytes"},
        {"/sched/gomaxprocs:threads", ValueKind::Uint64, false, "go_sched_gomaxprocs_threads"},
        {"/sched/latencies:seconds", ValueKind::Float64Histogram, true, "go_sched_latencies_seconds"},
        {"/sync/mutex/wait/total:seconds", ValueKind::Float64, true, "go_sync_mutex_wait_total_seconds_total"},
    };
    for (const Case& c : cases) {
        INFO(c.go);
        CHECK(metric_name(c.go, c.kind, c.cumulative, "go") == c.prom);
    }
}

TEST_CASE("metric_name: the namespace replaces go", "[prometheus]") {
    CHECK(metric_name("/gc/heap/allocs:bytes", ValueKind::Uint64, true, kDefaultNamespace) ==
          "gometrics_gc_heap_allocs_bytes_total");
    CHECK(metric_name("/sched/latencies:seconds", ValueKind::Float64Histogram, true, "gometrics") ==
          "gometrics_sched_latencies_seconds");
    CHECK(metric_name("/process/memory/rss:bytes", ValueKind::Uint64, false, "app") == "app_process_memory_rss_bytes");
    CHECK(metric_name("/cpu/classes/user:cpu-seconds", ValueKind::Float64, true, "") ==
          "cpu_classes_user_cpu_seconds_total");
    CHECK_FALSE(metric_name("/gc/heap/allocs:bytes", ValueKind::Uint64, true, "my-app"));
}

TEST_CASE("metric_name: Go's path.Dir and path.Base rules and odd shapes", "[prometheus]") {
    // path.Dir cleans the directory; the last element stays as written.
    CHECK(metric_name("/a/./b/../c/d:bytes", ValueKind::Uint64, false, "go") == "go_a_c_d_bytes");
    CHECK(metric_name("/a//b/c:bytes", ValueKind::Uint64, false, "go") == "go_a_b_c_bytes");
    // A top-level name has "." for a directory: not a valid Prometheus name.
    CHECK_FALSE(metric_name("/uptime:seconds", ValueKind::Float64, false, "go"));
    CHECK_FALSE(metric_name("/gc/heap/allocs", ValueKind::Uint64, false, "go"));
    CHECK_FALSE(metric_name("gc/heap/allocs:bytes", ValueKind::Uint64, false, "go"));
    CHECK_FALSE(metric_name("", ValueKind::Uint64, false, "go"));
}

TEST_CASE("rebucket: Go's allocs-by-size edges by 2 give client_golang's buckets", "[prometheus]") {
    CHECK(rebucket(go_size_class_edges(), 2) ==
          std::vector<double>{1, 9, 25, 65, 145, 321, 705, 1537, 3201, 6529, 13569, 27265, kInf});
}

TEST_CASE("rebucket: small inputs", "[prometheus]") {
    CHECK(rebucket({0, 1, 2, 3, 4, 8, 10, 16, kInf}, 2) == std::vector<double>{0, 1, 2, 4, 8, 16, kInf});
    CHECK(rebucket({-kInf, 0, 1, 5, 10, 100, kInf}, 10) == std::vector<double>{-kInf, 0, 1, 10, 100, kInf});
    // Negative edges: each kept one at least 10x closer to zero.
    CHECK(rebucket({-1000, -500, -100, -20, -10, 0, kInf}, 10) == std::vector<double>{-1000, -100, -10, 0, kInf});
    // The last edge is kept only when it qualifies, as in client_golang.
    CHECK(rebucket({1, 2, 3}, 2) == std::vector<double>{1, 2});
    CHECK(rebucket({5}, 2) == std::vector<double>{5});
    CHECK(rebucket({}, 2).empty());
}

TEST_CASE("reduced_bounds: per unit", "[prometheus]") {
    // Seconds: by 10 (0 admits any next edge), then the first edge above 1 s
    // becomes +Inf and the rest go; -Inf goes.
    CHECK(reduced_bounds({-kInf, 0, 1e-3, 1e-2, 0.5, 1, 2, 20, 200, kInf}, "seconds") ==
          std::vector<double>{0, 1e-3, 1e-2, 0.5, kInf});
    CHECK(reduced_bounds({0, 8, 12, 16, 24, 32, kInf}, "bytes") == std::vector<double>{0, 8, 16, 32, kInf});
    CHECK(reduced_bounds({-kInf, 1, 2, 3, kInf}, "objects") == std::vector<double>{1, 2, 3, kInf});
    CHECK(reduced_bounds({0, 1, kInf}, "cpu-seconds") == std::vector<double>{0, 1, kInf});
}

TEST_CASE("to_histogram: allocs-by-size gives client_golang's le values", "[prometheus]") {
    const std::vector<double> edges = go_size_class_edges();
    const Histogram h = to_histogram({.counts = std::vector<uint64_t>(edges.size() - 1, 1), .buckets = edges}, "bytes",
                                     std::nullopt);
    std::vector<std::string> le;
    for (double b : upper_bounds(h)) le.push_back(format_float(b));
    CHECK(le == std::vector<std::string>{"8.999999999999998", "24.999999999999996", "64.99999999999999",
                                         "144.99999999999997", "320.99999999999994", "704.9999999999999",
                                         "1536.9999999999998", "3200.9999999999995", "6528.999999999999",
                                         "13568.999999999998", "27264.999999999996"});
    // One count per Go bucket: [1,9) spans 1 Go bucket, [9,25) 2, [25,65) 3, ...
    CHECK(cumulative_counts(h) == std::vector<uint64_t>{1, 3, 6, 11, 20, 29, 36, 42, 48, 57, 65});
    CHECK(h.count == 68);
}

TEST_CASE("to_histogram: sched latencies give client_golang's le values", "[prometheus]") {
    const std::vector<double> edges = go_time_edges();
    const Histogram h = to_histogram({.counts = std::vector<uint64_t>(edges.size() - 1, 0), .buckets = edges},
                                     "seconds", std::nullopt);
    std::vector<std::string> le;
    for (double b : upper_bounds(h)) le.push_back(format_float(b));
    CHECK(le == std::vector<std::string>{"6.399999999999999e-08", "6.399999999999999e-07", "7.167999999999999e-06",
                                         "8.191999999999999e-05", "0.0009175039999999999", "0.010485759999999998",
                                         "0.11744051199999998"});
}

TEST_CASE("reduce_counts: underflow joins the first bucket, overflow goes to +Inf only", "[prometheus]") {
    const Float64Histogram h{.counts = {1, 2, 3, 4, 5, 6}, .buckets = {-kInf, 0, 1, 5, 10, 100, kInf}};
    const std::vector<double> reduced = reduced_bounds(h.buckets, "seconds");
    REQUIRE(reduced == std::vector<double>{0, 1, kInf});
    CHECK(reduce_counts(h, reduced) == std::vector<uint64_t>{1 + 2, 3 + 4 + 5 + 6});

    const Float64Histogram finite{.counts = {1, 2}, .buckets = {1, 2, 3}};
    CHECK(reduce_counts(finite, rebucket(finite.buckets, 2)) == std::vector<uint64_t>{1});
    const Histogram out = to_histogram(finite, "bytes", std::nullopt);
    CHECK(cumulative_counts(out) == std::vector<uint64_t>{1});
    CHECK(out.count == 3);  // the [2,3) value is above every finite le: +Inf only
}

TEST_CASE("to_histogram: seconds edges all above 1 s leave only +Inf", "[prometheus]") {
    // client_golang indexes an empty slice here and panics; such edges never
    // come from Go's runtime, but a segment may hold anything.
    const Histogram h = to_histogram({.counts = {2, 3}, .buckets = {5, 50, kInf}}, "seconds", std::nullopt);
    CHECK(h.buckets.empty());
    CHECK(h.count == 5);
    CHECK(h.sum == 2 * 27.5 + 3 * 50);
    const Family x{.name = "x_seconds",
                   .help = "",
                   .type = Type::Histogram,
                   .series = {{.labels = {}, .value = 0, .histogram = h}}};
    CHECK(text_of({x}) ==
          "# TYPE x_seconds histogram\n"
          "x_seconds_bucket{le=\"+Inf\"} 5\n"
          "x_seconds_sum 205\n"
          "x_seconds_count 5\n");
}

TEST_CASE("to_histogram: cumulative counts, count and sum", "[prometheus]") {
    const Float64Histogram h{.counts = {2, 0, 3, 1}, .buckets = {0, 8, 16, 32, kInf}};
    const Histogram exact = to_histogram(h, "bytes", 100.0);
    CHECK(upper_bounds(exact) == std::vector<double>{std::nextafter(8.0, 0.0), std::nextafter(16.0, 0.0),
                                                     std::nextafter(32.0, 0.0)});
    CHECK(cumulative_counts(exact) == std::vector<uint64_t>{2, 2, 5});
    CHECK(exact.count == 6);
    CHECK(exact.sum == 100.0);
    // Midpoints 4 and 24, and the finite edge 32 of [32, +Inf).
    CHECK(to_histogram(h, "bytes", std::nullopt).sum == 2 * 4 + 3 * 24 + 1 * 32);
}

TEST_CASE("estimated_sum: midpoints, finite edges of unbounded buckets", "[prometheus]") {
    CHECK(estimated_sum({.counts = {1, 1, 1}, .buckets = {-kInf, 2, 4, kInf}}) == 2 + 3 + 4);
    CHECK(estimated_sum({.counts = {5}, .buckets = {-kInf, kInf}}) == 0);
    CHECK(estimated_sum({.counts = {}, .buckets = {0}}) == 0);
}

TEST_CASE("format_float: as Go's strconv.FormatFloat(v, 'g', -1, 64) in expfmt", "[prometheus]") {
    CHECK(format_float(0) == "0");
    CHECK(format_float(-0.0) == "0");
    CHECK(format_float(1) == "1");
    CHECK(format_float(-1) == "-1");
    CHECK(format_float(0.5) == "0.5");
    CHECK(format_float(100) == "100");
    CHECK(format_float(123456) == "123456");
    CHECK(format_float(999999.5) == "999999.5");
    CHECK(format_float(1e6) == "1e+06");
    CHECK(format_float(1234567) == "1.234567e+06");
    CHECK(format_float(7.2408264e+07) == "7.2408264e+07");
    CHECK(format_float(9223372036854775807.0) == "9.223372036854776e+18");
    CHECK(format_float(0.0001) == "0.0001");
    CHECK(format_float(0.00001) == "1e-05");
    CHECK(format_float(0.00222816) == "0.00222816");
    CHECK(format_float(-2.5e-7) == "-2.5e-07");
    CHECK(format_float(1e21) == "1e+21");
    CHECK(format_float(5e-324) == "5e-324");
    CHECK(format_float(0.1 + 0.2) == "0.30000000000000004");
    CHECK(format_float(kInf) == "+Inf");
    CHECK(format_float(-kInf) == "-Inf");
    CHECK(format_float(std::numeric_limits<double>::quiet_NaN()) == "NaN");
}

namespace {

// A counter, a gauge, a histogram and an untyped family without help: the
// families the golden pages below are rendered from.
std::vector<Family> small_family_set() {
    const std::vector<Label> app{{"comm", "app"}, {"pid", "42"}};
    return {
        {.name = "gometrics_gc_heap_allocs_bytes_total",
         .help = "Cumulative sum of memory allocated to the heap.",
         .type = Type::Counter,
         .series = {{.labels = app, .value = 1234567, .histogram = {}}}},
        {.name = "gometrics_sched_gomaxprocs_threads",
         .help = "The \"current\" C:\\ GOMAXPROCS\nsetting.",
         .type = Type::Gauge,
         .series = {{.labels = app, .value = 1, .histogram = {}},
                    {.labels = {{"comm", "we\"ird\\na\nme"}, {"pid", "7"}}, .value = 0.5, .histogram = {}}}},
        {.name = "gometrics_sync_mutex_wait_seconds",
         .help = "Time spent waiting.",
         .type = Type::Histogram,
         .series = {{.labels = app,
                     .value = 0,
                     .histogram = {.buckets = {{1e-6, 3}, {1, 5}}, .sum = 0.25, .count = 6}}}},
        {.name = "build_info",
         .help = "",
         .type = Type::Untyped,
         .series = {{.labels = {}, .value = 1, .histogram = {}}}},
    };
}

}  // namespace

TEST_CASE("render_text: golden page", "[prometheus]") {
    CHECK(text_of(small_family_set()) ==
          "# HELP gometrics_gc_heap_allocs_bytes_total Cumulative sum of memory allocated to the heap.\n"
          "# TYPE gometrics_gc_heap_allocs_bytes_total counter\n"
          "gometrics_gc_heap_allocs_bytes_total{comm=\"app\",pid=\"42\"} 1.234567e+06\n"
          "# HELP gometrics_sched_gomaxprocs_threads The \"current\" C:\\\\ GOMAXPROCS\\nsetting.\n"
          "# TYPE gometrics_sched_gomaxprocs_threads gauge\n"
          "gometrics_sched_gomaxprocs_threads{comm=\"app\",pid=\"42\"} 1\n"
          "gometrics_sched_gomaxprocs_threads{comm=\"we\\\"ird\\\\na\\nme\",pid=\"7\"} 0.5\n"
          "# HELP gometrics_sync_mutex_wait_seconds Time spent waiting.\n"
          "# TYPE gometrics_sync_mutex_wait_seconds histogram\n"
          "gometrics_sync_mutex_wait_seconds_bucket{comm=\"app\",pid=\"42\",le=\"1e-06\"} 3\n"
          "gometrics_sync_mutex_wait_seconds_bucket{comm=\"app\",pid=\"42\",le=\"1\"} 5\n"
          "gometrics_sync_mutex_wait_seconds_bucket{comm=\"app\",pid=\"42\",le=\"+Inf\"} 6\n"
          "gometrics_sync_mutex_wait_seconds_sum{comm=\"app\",pid=\"42\"} 0.25\n"
          "gometrics_sync_mutex_wait_seconds_count{comm=\"app\",pid=\"42\"} 6\n"
          "# TYPE build_info untyped\n"
          "build_info 1\n");
}

TEST_CASE("render_openmetrics: golden page", "[prometheus]") {
    CHECK(openmetrics_of(small_family_set()) ==
          "# HELP gometrics_gc_heap_allocs_bytes Cumulative sum of memory allocated to the heap.\n"
          "# TYPE gometrics_gc_heap_allocs_bytes counter\n"
          "gometrics_gc_heap_allocs_bytes_total{comm=\"app\",pid=\"42\"} 1.234567e+06\n"
          "# HELP gometrics_sched_gomaxprocs_threads The \\\"current\\\" C:\\\\ GOMAXPROCS\\nsetting.\n"
          "# TYPE gometrics_sched_gomaxprocs_threads gauge\n"
          "gometrics_sched_gomaxprocs_threads{comm=\"app\",pid=\"42\"} 1.0\n"
          "gometrics_sched_gomaxprocs_threads{comm=\"we\\\"ird\\\\na\\nme\",pid=\"7\"} 0.5\n"
          "# HELP gometrics_sync_mutex_wait_seconds Time spent waiting.\n"
          "# TYPE gometrics_sync_mutex_wait_seconds histogram\n"
          "gometrics_sync_mutex_wait_seconds_bucket{comm=\"app\",pid=\"42\",le=\"1e-06\"} 3\n"
          "gometrics_sync_mutex_wait_seconds_bucket{comm=\"app\",pid=\"42\",le=\"1.0\"} 5\n"
          "gometrics_sync_mutex_wait_seconds_bucket{comm=\"app\",pid=\"42\",le=\"+Inf\"} 6\n"
          "gometrics_sync_mutex_wait_seconds_sum{comm=\"app\",pid=\"42\"} 0.25\n"
          "gometrics_sync_mutex_wait_seconds_count{comm=\"app\",pid=\"42\"} 6\n"
          "# TYPE build_info unknown\n"
          "build_info 1.0\n"
          "# EOF\n");
}

TEST_CASE("renderers: large counts, special values, a counter without _total", "[prometheus]") {
    const std::vector<Family> families{
        {.name = "h",
         .help = "",
         .type = Type::Histogram,
         .series = {{.labels = {},
                     .value = 0,
                     .histogram = {.buckets = {{0, 1234567}}, .sum = kInf, .count = 1234567}}}},
        {.name = "g", .help = "", .type = Type::Gauge, .series = {{.labels = {}, .value = -kInf, .histogram = {}}}},
        {.name = "c",
         .help = "A counter.",
         .type = Type::Counter,
         .series = {{.labels = {}, .value = 3, .histogram = {}}}},
    };
    CHECK(text_of(families) ==
          "# TYPE h histogram\n"
          "h_bucket{le=\"0\"} 1.234567e+06\n"
          "h_bucket{le=\"+Inf\"} 1.234567e+06\n"
          "h_sum +Inf\n"
          "h_count 1.234567e+06\n"
          "# TYPE g gauge\n"
          "g -Inf\n"
          "# HELP c A counter.\n"
          "# TYPE c counter\n"
          "c 3\n");
    CHECK(openmetrics_of(families) ==
          "# TYPE h histogram\n"
          "h_bucket{le=\"0.0\"} 1234567\n"
          "h_bucket{le=\"+Inf\"} 1234567\n"
          "h_sum +Inf\n"
          "h_count 1234567\n"
          "# TYPE g gauge\n"
          "g -Inf\n"
          "# HELP c A counter.\n"
          "# TYPE c unknown\n"
          "c 3.0\n"
          "# EOF\n");
    CHECK(openmetrics_of({}) == "# EOF\n");
    CHECK(text_of({}).empty());
}

namespace {

ProcessSnapshot process(int pid, std::string comm, uint64_t allocated) {
    ProcessSnapshot p{.pid = pid, .comm = std::move(comm), .descs = {}, .values = {}};
    const auto add = [&](Description d, Value v) {
        p.descs.push_back(std::move(d));
        p.values.push_back(std::move(v));
    };
    add(desc("/gc/heap/allocs-by-size:bytes", ValueKind::Float64Histogram, true, "Heap allocations by size."),
        hist({2, 1, 1}, {0, 8, 16, kInf}));
    add(desc("/gc/heap/allocs:bytes", ValueKind::Uint64, true, "Bytes allocated."), u64(allocated));
    add(desc("/memory/classes/total:bytes", ValueKind::Uint64, false, "All memory."), u64(4096));
    add(desc("/sched/latencies:seconds", ValueKind::Float64Histogram, true, "Run queue waits."),
        hist({3, 1}, {-kInf, 0, kInf}));
    add(desc("/sched/latencies/total:seconds", ValueKind::Float64, true, "Total run queue wait."), f64(0.75));
    add(desc("/sync/mutex/wait:seconds", ValueKind::Float64Histogram, true, "Mutex waits."),
        hist({1, 1}, {0, 1e-3, kInf}));
    add(desc("/gc/cycles/total:gc-cycles", ValueKind::Uint64, true, "Unsupported here."), Value{});
    add(desc("/cpu/classes/user:cpu-seconds", ValueKind::Float64, true, "Mismatched value."), u64(3));
    add(desc("/broken/hist:bytes", ValueKind::Float64Histogram, false, "Malformed."), hist({1, 2}, {0, 1}));
    return p;
}

}  // namespace

TEST_CASE("add_process: families, labels, types and help as client_golang", "[prometheus]") {
    std::vector<Family> families;
    add_process(families, process(42, "app", 1000), "gometrics");

    std::vector<std::string> names;
    for (const Family& f : families) names.push_back(f.name);
    CHECK(names == std::vector<std::string>{"gometrics_gc_heap_allocs_by_size_bytes",
                                            "gometrics_gc_heap_allocs_bytes_total",
                                            "gometrics_memory_classes_total_bytes",
                                            "gometrics_sched_latencies_seconds",
                                            "gometrics_sched_latencies_total_seconds_total",
                                            "gometrics_sync_mutex_wait_seconds"});

    const Family* allocs = find(families, "gometrics_gc_heap_allocs_bytes_total");
    REQUIRE(allocs);
    CHECK(allocs->type == Type::Counter);
    CHECK(allocs->help == "Bytes allocated. Sourced from /gc/heap/allocs:bytes.");
    REQUIRE(allocs->series.size() == 1);
    CHECK(allocs->series[0].value == 1000);
    CHECK(allocs->series[0].labels.size() == 2);
    CHECK(allocs->series[0].labels[0].name == "comm");
    CHECK(allocs->series[0].labels[0].value == "app");
    CHECK(allocs->series[0].labels[1].name == "pid");
    CHECK(allocs->series[0].labels[1].value == "42");
    CHECK(find(families, "gometrics_memory_classes_total_bytes")->type == Type::Gauge);
    CHECK(find(families, "gometrics_sched_latencies_seconds")->type == Type::Histogram);
}

TEST_CASE("add_process: exact sums from matching totals, estimates otherwise", "[prometheus]") {
    std::vector<Family> families;
    add_process(families, process(42, "app", 1000), "gometrics");

    const Histogram& by_size = find(families, "gometrics_gc_heap_allocs_by_size_bytes")->series.at(0).histogram;
    CHECK(by_size.sum == 1000);  // /gc/heap/allocs:bytes
    CHECK(by_size.count == 4);
    CHECK(cumulative_counts(by_size) == std::vector<uint64_t>{2, 3});

    const Histogram& latencies = find(families, "gometrics_sched_latencies_seconds")->series.at(0).histogram;
    CHECK(latencies.sum == 0.75);  // /sched/latencies/total:seconds
    CHECK(latencies.count == 4);

    // No /sync/mutex/wait/total:seconds in this process: midpoint 0.0005 and edge 0.001.
    const Histogram& waits = find(families, "gometrics_sync_mutex_wait_seconds")->series.at(0).histogram;
    CHECK(waits.sum == Approx(0.0005 + 0.001));
}

TEST_CASE("add_process: a total that is not a cumulative scalar gives no exact sum", "[prometheus]") {
    ProcessSnapshot p{.pid = 1, .comm = "x", .descs = {}, .values = {}};
    p.descs = {desc("/sync/mutex/wait:seconds", ValueKind::Float64Histogram, true),
               desc("/sync/mutex/wait/total:seconds", ValueKind::Float64, false)};
    p.values = {hist({2}, {0, 1}), f64(99)};
    std::vector<Family> families;
    add_process(families, p, "gometrics");
    CHECK(find(families, "gometrics_sync_mutex_wait_seconds")->series.at(0).histogram.sum == 1.0);
}

TEST_CASE("add_process: two processes share one family each", "[prometheus]") {
    std::vector<Family> families;
    add_process(families, process(42, "app", 1000), "gometrics");
    add_process(families, process(7, "db", 2000), "gometrics");
    CHECK(families.size() == 6);

    const Family* allocs = find(families, "gometrics_gc_heap_allocs_bytes_total");
    REQUIRE(allocs->series.size() == 2);
    CHECK(allocs->series[0].labels[1].value == "42");
    CHECK(allocs->series[1].labels[0].value == "db");
    CHECK(allocs->series[1].labels[1].value == "7");
    CHECK(allocs->series[1].value == 2000);
    CHECK(find(families, "gometrics_gc_heap_allocs_by_size_bytes")->series.at(1).histogram.sum == 2000);

    const std::string page = text_of(families);
    size_t helps = 0;
    for (size_t at = page.find("# HELP gometrics_gc_heap_allocs_bytes_total"); at != page.npos;
         at = page.find("# HELP gometrics_gc_heap_allocs_bytes_total", at + 1))
        ++helps;
    CHECK(helps == 1);
    CHECK(page.find("gometrics_gc_heap_allocs_bytes_total{comm=\"app\",pid=\"42\"} 1000\n"
                    "gometrics_gc_heap_allocs_bytes_total{comm=\"db\",pid=\"7\"} 2000\n") != page.npos);
}

TEST_CASE("add_process: a family of another type is not mixed into", "[prometheus]") {
    std::vector<Family> families;
    ProcessSnapshot old_agent{.pid = 1, .comm = "a", .descs = {desc("/x/y:bytes", ValueKind::Uint64, false)},
                              .values = {u64(5)}};
    ProcessSnapshot new_agent{.pid = 2, .comm = "b", .descs = {desc("/x/y:bytes", ValueKind::Float64, true)},
                              .values = {f64(6)}};
    add_process(families, old_agent, "gometrics");
    add_process(families, new_agent, "gometrics");
    REQUIRE(families.size() == 2);  // gometrics_x_y_bytes and gometrics_x_y_bytes_total
    CHECK(families[0].series.size() == 1);
    CHECK(families[1].name == "gometrics_x_y_bytes_total");

    ProcessSnapshot clash{.pid = 3, .comm = "c", .descs = {desc("/x/y:bytes", ValueKind::Float64Histogram, false)},
                          .values = {hist({1}, {0, kInf})}};
    add_process(families, clash, "gometrics");
    CHECK(families.size() == 2);
    CHECK(families[0].series.size() == 1);
}

TEST_CASE("add_process: comm becomes valid UTF-8", "[prometheus]") {
    std::vector<Family> families;
    ProcessSnapshot p{.pid = 9, .comm = "caf\xC3\xA9\xFF\xC3", .descs = {desc("/a/b:bytes", ValueKind::Uint64, false)},
                      .values = {u64(1)}};
    add_process(families, p, "gometrics");
    CHECK(families.at(0).series.at(0).labels[0].value == "caf\xC3\xA9\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("accepts_openmetrics: as Prometheus negotiates", "[prometheus]") {
    // Prometheus 2.x's scrape header, and the one before OpenMetrics 1.0.0.
    CHECK(accepts_openmetrics("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
                              "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"));
    CHECK(accepts_openmetrics("application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"));
    // Protobuf first (scrape_protocols with PrometheusProto): not served, OpenMetrics is next.
    CHECK(accepts_openmetrics("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                              "encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;"
                              "escaping=allow-utf-8;q=0.5,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"));
    // scrape_protocols: [PrometheusText0.0.4].
    CHECK_FALSE(accepts_openmetrics("text/plain;version=0.0.4;q=0.2,*/*;q=0.1"));
    // q decides, not the order written.
    CHECK_FALSE(accepts_openmetrics("application/openmetrics-text;q=0.3,text/plain;q=0.9"));
    CHECK(accepts_openmetrics("text/plain;q=0.3, application/openmetrics-text;q=0.9"));
    // Versions we do not speak are passed over.
    CHECK_FALSE(accepts_openmetrics("application/openmetrics-text;version=2.0.0"));
    CHECK(accepts_openmetrics("text/plain;version=1.0.0,application/openmetrics-text;q=0.5"));
    // Browsers, curl, no header, a refusal.
    CHECK_FALSE(accepts_openmetrics("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"));
    CHECK_FALSE(accepts_openmetrics("*/*"));
    CHECK_FALSE(accepts_openmetrics(""));
    CHECK_FALSE(accepts_openmetrics("application/openmetrics-text;q=0"));
    CHECK_FALSE(accepts_openmetrics("application/openmetrics-text;q=bad"));
}

TEST_CASE("add_process_standard: client_golang's process families from what the process publishes", "[prometheus]") {
    ProcessSnapshot full{.pid = 42, .comm = "app", .descs = {}, .values = {}};
    full.descs = {desc("/cpu/classes/system:cpu-seconds", ValueKind::Float64, true),
                  desc("/cpu/classes/user:cpu-seconds", ValueKind::Float64, true),
                  desc("/process/fds/open:fds", ValueKind::Uint64, false),
                  desc("/process/memory/rss:bytes", ValueKind::Uint64, false)};
    full.values = {f64(0.25), f64(1.5), u64(7), u64(1 << 20)};
    // An older agent: no CPU classes, no fds.
    ProcessSnapshot partial{.pid = 7, .comm = "old", .descs = {desc("/process/memory/rss:bytes", ValueKind::Uint64, false)},
                            .values = {u64(4096)}};
    std::vector<Family> families;
    add_process_standard(families, full, 1.7e9);
    add_process_standard(families, partial, std::nullopt);

    const Family* cpu = find(families, "process_cpu_seconds_total");
    REQUIRE(cpu);
    CHECK(cpu->type == Type::Counter);
    REQUIRE(cpu->series.size() == 1);
    CHECK(cpu->series[0].value == 1.75);
    CHECK(cpu->series[0].labels.at(0).value == "app");
    CHECK(cpu->series[0].labels.at(1).value == "42");
    CHECK(find(families, "process_open_fds")->series.at(0).value == 7);
    CHECK(find(families, "process_start_time_seconds")->series.size() == 1);
    const Family* rss = find(families, "process_resident_memory_bytes");
    REQUIRE(rss->series.size() == 2);
    CHECK(rss->type == Type::Gauge);
    CHECK(rss->series[1].value == 4096);
    CHECK(rss->series[1].labels.at(1).value == "7");
}
