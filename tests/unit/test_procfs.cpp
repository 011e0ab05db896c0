// Pure parts of the threads, cpu and sched families: /proc and cgroup
// parsers, the CPU sum rule, Go's GOMAXPROCS rule, schedstat folding.
#include <catch2/catch.hpp>

#include "cpu.h"
#include "procfs.h"
#include "sched_latencies.h"

using namespace gometrics::collect;

TEST_CASE("status fields: the number after the key, whole keys only") {
    const std::string_view s =
        "Name:\tcat\nThreadsX:\t9\nThreads:\t51\nVmRSS:\t    3508 kB\nvoluntary_ctxt_switches:\t12\n"
        "nonvoluntary_ctxt_switches:\t3";
    CHECK(procfs::status_field(s, "Threads") == 51u);
    CHECK(procfs::status_field(s, "VmRSS") == 3508u);
    CHECK(procfs::status_field(s, "nonvoluntary_ctxt_switches") == 3u);
    CHECK(procfs::status_field(s, "voluntary_ctxt_switches") == 12u);
    CHECK(!procfs::status_field(s, "VmSwap"));
    CHECK(!procfs::status_field(s, "Name"));  // not a number
    CHECK(!procfs::status_field("", "Threads"));
}

TEST_CASE("stat: fields counted after the command name, whatever it holds") {
    const std::string_view s =
        "4242 (a) b (c) S 1 4242 4242 34816 4242 4194304 1500 0 7 0 250 31 0 0 20 0 3 0 987654 1000 200 "
        "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
    const auto st = procfs::parse_stat(s);
    REQUIRE(st);
    CHECK(st->minflt == 1500);
    CHECK(st->majflt == 7);
    CHECK(st->utime == 250);
    CHECK(st->stime == 31);
    CHECK(st->num_threads == 3);
    CHECK(st->starttime == 987654);
    CHECK(!procfs::parse_stat("4242 (truncated) S 1 2 3"));
    CHECK(!procfs::parse_stat("no parenthesis"));
    CHECK(!procfs::parse_stat("1 (x) S 1 1 1 1 1 1 oops 0 7 0 250 31 0 0 20 0 3 0 5 1"));
}

TEST_CASE("schedstat: three numbers") {
    const auto ss = procfs::parse_schedstat("123 456 7\n");
    REQUIRE(ss);
    CHECK(ss->run_ns == 123);
    CHECK(ss->wait_ns == 456);
    CHECK(ss->timeslices == 7);
    CHECK(!procfs::parse_schedstat("123 456"));
    CHECK(!procfs::parse_schedstat("x y z"));
}

TEST_CASE("cgroup v2: group, mount and cpu.max") {
    CHECK(procfs::cgroup_v2_path("12:cpu:/a\n0::/user.slice/app.scope\n") == std::string_view("/user.slice/app.scope"));
    CHECK(!procfs::cgroup_v2_path("1:cpu:/\n"));
    const std::string_view mi =
        "22 1 0:20 / /sys/fs/cgroup/cpu rw,relatime shared:7 - cgroup cgroup rw,cpu\n"
        "35 25 0:30 /kube/pod1 /sys/fs/cgroup rw,nosuid shared:9 master:3 - cgroup2 cgroup2 rw,nsdelegate\n";
    const auto m = procfs::cgroup2_mount(mi);
    REQUIRE(m);
    CHECK(m->root == "/kube/pod1");
    CHECK(m->mount_point == "/sys/fs/cgroup");
    CHECK(!procfs::cgroup2_mount("22 1 0:20 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"));
    CHECK(procfs::parse_cpu_max("150000 100000\n") == 1.5);
    CHECK(!procfs::parse_cpu_max("max 100000\n"));
    CHECK(!procfs::parse_cpu_max("150000 0\n"));
    CHECK(!procfs::parse_cpu_max("15x0 100000\n"));
    CHECK(!procfs::parse_cpu_max(""));
}

TEST_CASE("gomaxprocs: affinity, lowered to the cgroup limit rounded up, at least 2") {
    CHECK(cpu::gomaxprocs(8, std::nullopt) == 8);
    CHECK(cpu::gomaxprocs(8, 1.5) == 2);
    CHECK(cpu::gomaxprocs(8, 2.01) == 3);
    CHECK(cpu::gomaxprocs(8, 0.5) == 2);
    CHECK(cpu::gomaxprocs(1, 0.5) == 1);  // never above the CPUs it may run on
    CHECK(cpu::gomaxprocs(4, 16) == 4);
}

TEST_CASE("cpu classes: exact sum rule, every leaf monotonic") {
    cpu::Classes c;
    double last[4] = {};
    // (user, system, capacity of the step) in ns; the third step uses more
    // than its capacity (late accounting), the last reads a lagging user.
    const uint64_t steps[][3] = {{300000001, 100000003, 2000000000},
                                 {700000000, 100000003, 500000000},
                                 {1700000000, 200000000, 100000000},
                                 {1600000000, 300000000, 1000000000}};
    for (auto& s : steps) {
        c.step(s[0], s[1], s[2]);
        const double u = double(c.user_q()) * cpu::kQuantumSeconds, sy = double(c.system_q()) * cpu::kQuantumSeconds,
                     i = double(c.idle_q()) * cpu::kQuantumSeconds, t = double(c.total_q()) * cpu::kQuantumSeconds;
        CHECK(u + sy + i == t);
        CHECK(i + sy + u == t);
        const double now[4] = {u, sy, i, t};
        for (int k = 0; k < 4; ++k) {
            CHECK(now[k] >= last[k]);
            last[k] = now[k];
        }
    }
    CHECK(cpu::quanta(1000000000) == (1u << 20));
    // Capacity integrated: 3.6 s; total never below it.
    CHECK(double(c.total_q()) * cpu::kQuantumSeconds >= 3.6 - 1e-5);
}

TEST_CASE("sched latencies: stretches added once, threads come and go") {
    sched::Latencies l;
    l.live(10, 1000, 10);
    l.live(5, 500, 1);
    l.end();
    CHECK(l.total_wait_ns() == 1500);
    l.live(5, 700, 3);   // +200 over 2 slices
    l.live(10, 1400, 12);  // +400 over 2
    l.end();
    CHECK(l.total_wait_ns() == 2100);
    l.live(10, 1400, 12);  // nothing new
    l.live(5, 800, 4);     // +100 over 1
    l.live(7, 300, 3);     // new since the last snapshot: all of it
    l.end();
    CHECK(l.total_wait_ns() == 2500);
    l.live(5, 900, 5);  // 10 and 7 gone: their totals stay; +100 over 1
    l.end();
    CHECK(l.total_wait_ns() == 2600);
    l.live(5, 50, 1);  // tid reused by a new thread
    l.end();
    CHECK(l.total_wait_ns() == 2650);
    uint64_t samples = 0;
    for (size_t i = 0; i < gometrics::buckets::kTimeCounts; ++i) samples += l.wait_by_time()[i];
    CHECK(samples == 10 + 1 + 2 + 2 + 1 + 3 + 1 + 1);
    CHECK(l.wait_by_time()[gometrics::buckets::time_index(500)] >= 1);
}
