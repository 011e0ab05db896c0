// serve's collector against real segments: the test process publishes one
// for itself with the real writer, and listings name processes that vanished
// or whose segment is garbage. Those are dropped, counted and logged once;
// the others are served.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <bit>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <zlib.h>

#include "serve.h"
#include "units.h"
#include "clocks.h"
#include "reader.h"
#include "writer.h"

using namespace gometrics;
using namespace gometrics::cli;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kEdges[] = {0, 8, 16, 32, kInf};

const ipc::MetricSpec kSpecs[] = {
    {"/gc/heap/allocs-by-size:bytes", "Allocations by size.", layout::kKindFloat64Histogram, true, kEdges},
    {"/gc/heap/allocs:bytes", "Bytes allocated.", layout::kKindUint64, true, {}},
    {"/memory/classes/total:bytes", "All memory.", layout::kKindUint64, false, {}},
};

// Field 22 of /proc/self/stat, as the agent records it.
uint64_t own_start_ticks() {
    std::ifstream f("/proc/self/stat");
    std::string line;
    std::getline(f, line);
    size_t pos = line.rfind(')') + 2;
    for (int field = 3; field < 22; ++field) pos = line.find(' ', pos) + 1;
    return std::stoull(line.substr(pos));
}

// A segment for this very process, as the agent would publish it.
struct OwnSegment {
    ipc::SegmentWriter w;
    OwnSegment() {
        REQUIRE(w.create(kSpecs, getpid(), own_start_ticks(), 1000000000ULL, 1000) == 0);
        const uint64_t words[] = {1, 2, 3, 0, 72, 4096};  // 6 allocations, 72 bytes
        REQUIRE(w.payload_words() == 6);
        w.publish(words, 1, 2000000000ULL);
    }
    ~OwnSegment() { w.unlink(); }
};

ProcessInfo own_info() {
    ProcessInfo p;
    p.pid = getpid();
    p.command = "unit-tests";
    p.alive = p.readable = true;
    p.segment = segment_path(p.pid);
    return p;
}

struct Logged {
    std::vector<std::string> lines;
    serve::Collector::Log sink() {
        return [this](const std::string& l) { lines.push_back(l); };
    }
};

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("serve reads a live segment into one snapshot per process") {
    OwnSegment seg;
    Logged log;
    serve::Collector c({.ns = "gometrics", .pids = {}, .fresh_timeout_ms = 0}, log.sink());
    const serve::Collection got = c.collect_from({own_info()});
    REQUIRE(got.errors == 0);
    REQUIRE(got.processes.size() == 1);
    const serve::Process& p = got.processes[0];
    CHECK(p.snapshot.pid == getpid());
    CHECK(p.snapshot.comm == "unit-tests");
    CHECK(p.time_ns == 2000000000ULL);
    CHECK(p.start_time_ns == 1000000000ULL);
    REQUIRE(p.snapshot.descs.size() == 3);
    CHECK(p.snapshot.values[1].u64 == 72);
    CHECK(log.lines.empty());
}

TEST_CASE("serve drops a vanished or corrupt process, counts it, logs it once, and keeps the others") {
    OwnSegment seg;
    Logged log;
    serve::Collector c({.ns = "gometrics", .pids = {}, .fresh_timeout_ms = 0}, log.sink());

    // Listed, then gone before it was opened (a pid no process can have).
    ProcessInfo vanished;
    vanished.pid = (1 << 22) + 5;
    vanished.alive = vanished.readable = true;
    vanished.segment = segment_path(vanished.pid) + ".nonexistent";

    // A readable file of garbage under a live pid: list_processes() could not parse it.
    char path[] = "/tmp/gometrics-serve-test-XXXXXX";
    const int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, "garbage, not a segment\n", 23) == 23);
    close(fd);
    ProcessInfo corrupt;
    corrupt.pid = 1;
    corrupt.alive = true;
    corrupt.readable = false;
    corrupt.segment = path;

    // A dead process's leftover segment is skipped without an error.
    ProcessInfo dead = vanished;
    dead.pid = (1 << 22) + 7;
    dead.alive = false;

    const std::vector<ProcessInfo> listing{corrupt, own_info(), vanished, dead};
    for (int scrape = 0; scrape < 3; ++scrape) {
        const serve::Collection got = c.collect_from(listing);
        CHECK(got.errors == 2);
        CHECK(got.failed == std::vector<int>{1, vanished.pid});
        REQUIRE(got.processes.size() == 1);
        CHECK(got.processes[0].snapshot.pid == getpid());
    }
    REQUIRE(log.lines.size() == 2);  // once per pid, not per scrape
    CHECK(contains(log.lines[0], "process 1 left out"));
    CHECK(contains(log.lines[1], "process " + std::to_string(vanished.pid) + " left out: " + vanished.segment));

    // Once it reads again (here: leaves the listing), a new failure is logged anew.
    (void)c.collect_from({own_info()});
    (void)c.collect_from(listing);
    CHECK(log.lines.size() == 4);
    unlink(path);
}

TEST_CASE("serve's /metrics page holds the process's series and serve's own metrics") {
    OwnSegment seg;
    Logged log;
    serve::Collector c({.ns = "gometrics", .pids = {getpid()}, .fresh_timeout_ms = 0}, log.sink());
    const std::string pid = std::to_string(getpid());
    const std::string text = c.metrics_page(false);
    // comm comes from /proc/PID/comm through the real listing.
    std::ifstream comm_file("/proc/self/comm");
    std::string comm;
    std::getline(comm_file, comm);
    const std::string labels = "{comm=\"" + comm + "\",pid=\"" + pid + "\"}";
    CHECK(contains(text, "# TYPE gometrics_gc_heap_allocs_bytes_total counter\n"));
    CHECK(contains(text, "gometrics_gc_heap_allocs_bytes_total" + labels + " 72\n"));
    CHECK(contains(text, "gometrics_memory_classes_total_bytes" + labels + " 4096\n"));
    // Exact _sum from /gc/heap/allocs:bytes; 6 allocations.
    CHECK(contains(text, "gometrics_gc_heap_allocs_by_size_bytes_sum" + labels + " 72\n"));
    CHECK(contains(text, "gometrics_gc_heap_allocs_by_size_bytes_count" + labels + " 6\n"));
    CHECK(contains(text, "gometrics_serve_processes 1\n"));
    CHECK(contains(text, "gometrics_serve_read_errors_total 0\n"));
    CHECK(contains(text, "gometrics_serve_scrapes_total 1\n"));
    CHECK(contains(text, "# TYPE gometrics_serve_scrape_duration_seconds gauge\n"));
    CHECK(!contains(text, "# EOF"));

    const std::string om = c.metrics_page(true);
    CHECK(contains(om, "# TYPE gometrics_gc_heap_allocs_bytes counter\n"));
    CHECK(contains(om, "gometrics_serve_scrapes_total 2.0\n"));
    CHECK(om.ends_with("# EOF\n"));
}

TEST_CASE("serve's JSON documents are dump's, and an unknown pid is nullopt") {
    OwnSegment seg;
    Logged log;
    serve::Collector c({.ns = "gometrics", .pids = {getpid()}, .fresh_timeout_ms = 0}, log.sink());
    const auto doc = c.process_json(getpid());
    REQUIRE(doc);
    REQUIRE(*doc);
    const auto j = nlohmann::json::parse(**doc);
    CHECK(j["pid"] == getpid());
    CHECK(j["time_ns"] == 2000000000ULL);
    REQUIRE(j["metrics"].size() == 3);
    CHECK(j["metrics"][1] == nlohmann::json::parse(
                                 R"({"name":"/gc/heap/allocs:bytes","kind":"uint64","cumulative":true,"value":72})"));
    CHECK(j["metrics"][0]["value"]["buckets"].back() == "+Inf");
    CHECK(j["metrics"][0]["value"]["counts"] == nlohmann::json::parse("[1,2,3,0]"));

    const auto all = nlohmann::json::parse(c.processes_json());
    REQUIRE(all.is_array());
    REQUIRE(all.size() == 1);
    CHECK(all[0]["metrics"] == j["metrics"]);

    // Outside --pid, or not instrumented: not found.
    CHECK(!c.process_json(getppid()));
    CHECK(contains(c.index_html(), "href=\"/api/v1/processes/" + std::to_string(getpid()) + "\""));
}

TEST_CASE("serve's own families are valid and namespaced") {
    const auto fams = serve::own_families("", 0.25, 3, 4, 5);
    REQUIRE(fams.size() == 4);
    CHECK(fams[0].name == "serve_processes");
    std::string out;
    prom::render_text(out, fams);
    CHECK(contains(out, "serve_scrape_duration_seconds 0.25\n"));
    CHECK(contains(out, "serve_read_errors_total 4\n"));
}

TEST_CASE("serve gzips for clients that accept it, and only for them") {
    CHECK(serve::accepts_gzip("gzip"));
    CHECK(serve::accepts_gzip("deflate, GZIP;q=0.5, br"));
    CHECK(serve::accepts_gzip("x-gzip"));
    CHECK(serve::accepts_gzip("*"));
    CHECK(!serve::accepts_gzip(""));
    CHECK(!serve::accepts_gzip("br, deflate"));
    CHECK(!serve::accepts_gzip("gzip;q=0, br"));
    CHECK(!serve::accepts_gzip("gzip; q=0.0"));
    CHECK(!serve::accepts_gzip("gzipped"));

    std::string page;
    for (int i = 0; i < 5000; ++i) page += "gometrics_gc_heap_allocs_bytes_total{comm=\"x\",pid=\"" + std::to_string(i) + "\"} 1\n";
    const auto packed = serve::gzip(page);
    REQUIRE(packed);
    CHECK(packed->size() < page.size() / 5);
    CHECK(static_cast<unsigned char>((*packed)[0]) == 0x1f);  // gzip magic
    CHECK(static_cast<unsigned char>((*packed)[1]) == 0x8b);

    // Inflate it back.
    z_stream z{};
    REQUIRE(inflateInit2(&z, 15 + 16) == Z_OK);
    std::string out(page.size() + 16, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(packed->data()));
    z.avail_in = static_cast<uInt>(packed->size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    CHECK(inflate(&z, Z_FINISH) == Z_STREAM_END);
    out.resize(out.size() - z.avail_out);
    inflateEnd(&z);
    CHECK(out == page);
}

TEST_CASE("uptime: seconds since a start, and how ps and the status page show them") {
    const uint64_t now = sys::clock_ns(CLOCK_REALTIME);
    const double up = uptime_seconds(now - 90 * sys::kNsPerSec);
    CHECK(up >= 90);
    CHECK(up < 90 + 60);
    CHECK(uptime_seconds(now + 3600 * sys::kNsPerSec) == 0);  // a start in the future
    CHECK(human_uptime(42.9) == "42s");
    CHECK(human_uptime(187) == "3m07s");
    CHECK(human_uptime(5 * 3600 + 120) == "5h02m");
    CHECK(human_uptime(2 * 86400 + 3 * 3600) == "2d03h");
}
