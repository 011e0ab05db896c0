// Pure parts of the threads, cpu and sched families: the CPU sum rule, Go's
// GOMAXPROCS rule, schedstat folding (the /proc parsers are sys's: sys/test_sys.cpp).
#include <catch2/catch.hpp>

#include "cpu.h"
#include "sched_latencies.h"

using namespace gometrics::collect;

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

TEST_CASE("sched latencies: from the in-place entries to mapped ones and back to few threads") {
    sched::Latencies l;
    // 3 in place, then 5,000 (past the in-place entries and the first
    // mapping's), then 2 again: each stretch counted once, whatever buffer
    // the previous reading is in.
    uint64_t want = 0;
    for (int32_t t = 1; t <= 3; ++t) l.live(t, 10, 1);
    l.end();
    want += 3 * 10;
    CHECK(l.total_wait_ns() == want);
    for (int32_t t = 5000; t >= 1; --t) l.live(t, 30, 2);  // out of order: sorted at end()
    l.end();
    want += 3 * 20 + 4997 * 30;
    CHECK(l.total_wait_ns() == want);
    for (int32_t t = 1; t <= 5000; ++t) l.live(t, 35, 3);
    l.end();
    want += 5000 * 5;
    CHECK(l.total_wait_ns() == want);
    l.live(4, 40, 4);
    l.live(4999, 36, 4);
    l.end();
    want += 5 + 1;
    CHECK(l.total_wait_ns() == want);
}
