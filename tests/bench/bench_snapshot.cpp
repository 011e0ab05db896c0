// Cost of one snapshot's computation (every metric of the catalogue, as the
// publisher computes them: /proc reads, schedstat of every thread, slot
// sums) with N idle threads alive (argv[1]); prints microseconds per
// snapshot, the median of argv[2] snapshots.
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "catalog.h"

namespace {

pthread_barrier_t g_done;

void* idle(void*) {
    pthread_barrier_wait(&g_done);
    return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    const int threads = atoi(argv[1]), snapshots = atoi(argv[2]);
    pthread_barrier_init(&g_done, nullptr, unsigned(threads) + 1);
    std::vector<pthread_t> t(static_cast<size_t>(threads));
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (auto& th : t)
        if (pthread_create(&th, &attr, idle, nullptr) != 0) return 1;
    std::vector<uint64_t> out(4096);
    std::vector<double> us;
    using clock = std::chrono::steady_clock;
    for (int i = 1; i <= snapshots; ++i) {
        const gometrics::collect::Snapshot s{uint64_t(i), 0, 0};
        const auto t0 = clock::now();
        for (const auto* m : gometrics::collect::catalog()) m->compute(s, out.data());
        us.push_back(std::chrono::duration<double, std::micro>(clock::now() - t0).count());
    }
    std::sort(us.begin(), us.end());
    std::printf("%.1f\n", us[us.size() / 2]);
    pthread_barrier_wait(&g_done);
    for (auto& th : t) pthread_join(th, nullptr);
    return 0;
}
