// The cost of one snapshot with allocator statistics on: T threads
// (argv[1]) each make glibc give them an arena (or jemalloc a thread cache)
// and leave it fragmented: N blocks (argv[2]) of mixed sizes, every other
// one freed, so the free lists mallinfo2 walks are long. Then times, over
// argv[3] rounds, the allocator back-end's read alone and a whole snapshot
// (every metric of the catalogue computed, as the publisher does, with the
// memory family's 1% limit on allocator reads). Prints
// "<backend> <read us> <snapshot us>". Run it plain (glibc) or with
// LD_PRELOAD=libjemalloc.so.2.
#include <pthread.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "allocator.h"
#include "catalog.h"

using namespace gometrics;

namespace {

long g_blocks;
pthread_barrier_t g_ready, g_done;

double now_us() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) * 1e6 + double(ts.tv_nsec) / 1e3;
}

void* fragment(void* arg) {
    unsigned seed = static_cast<unsigned>(reinterpret_cast<size_t>(arg));
    std::vector<void*> keep(static_cast<size_t>(g_blocks));
    for (auto& p : keep) {
        seed = seed * 1103515245u + 12345u;
        p = std::malloc(16 + (seed >> 8) % 2000);
    }
    for (size_t i = 0; i < keep.size(); i += 2) std::free(keep[i]);
    pthread_barrier_wait(&g_ready);
    pthread_barrier_wait(&g_done);  // arenas stay fragmented while main measures
    for (size_t i = 1; i < keep.size(); i += 2) std::free(keep[i]);
    return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::atoi(argv[1]) : 16;
    g_blocks = argc > 2 ? std::atol(argv[2]) : 20000;
    const int rounds = argc > 3 ? std::atoi(argv[3]) : 200;
    pthread_barrier_init(&g_ready, nullptr, static_cast<unsigned>(threads) + 1);
    pthread_barrier_init(&g_done, nullptr, static_cast<unsigned>(threads) + 1);
    std::vector<pthread_t> th(static_cast<size_t>(threads));
    for (int i = 0; i < threads; ++i) pthread_create(&th[size_t(i)], nullptr, fragment, reinterpret_cast<void*>(size_t(i) + 1));
    pthread_barrier_wait(&g_ready);

    const collect::AllocatorBackend& backend = collect::allocator();
    collect::AllocatorStats stats{};
    double t0 = now_us();
    for (int i = 0; i < rounds && backend.read; ++i) backend.read(stats);
    const double read_us = (now_us() - t0) / rounds;

    std::vector<uint64_t> out(4096);
    t0 = now_us();
    for (int i = 0; i < rounds; ++i) {
        timespec mono;
        clock_gettime(CLOCK_MONOTONIC, &mono);
        collect::Snapshot s{uint64_t(i) + 1, 0, uint64_t(mono.tv_sec) * 1000000000ULL + uint64_t(mono.tv_nsec)};
        for (const collect::Metric* m : collect::catalog()) m->compute(s, out.data());
    }
    const double snapshot_us = (now_us() - t0) / rounds;

    pthread_barrier_wait(&g_done);
    for (auto& t : th) pthread_join(t, nullptr);
    std::printf("%.*s %.1f %.1f\n", int(backend.name.size()), backend.name.data(), read_us, snapshot_us);
    return 0;
}
