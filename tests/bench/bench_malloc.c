/* malloc+free microbenchmark: T threads (argv[1]) each do N pairs
   (argv[2]) of mixed sizes (16 B to 1 KiB, a fixed pseudo-random mix, mostly
   small as in real programs) with a small ring of live blocks so the
   allocator does real work. Each thread times its pairs in 20 slices and
   keeps its fastest slice: on a shared machine the others carry the
   neighbours' noise, not the allocator's cost. Prints nanoseconds per
   malloc+free pair, averaged over the threads. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { kRing = 16, kSizes = 1024, kSlices = 20 };
static size_t sizes[kSizes];
static long pairs;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void* worker(void* out) {
    void* ring[kRing] = {0};
    const long per_slice = pairs / kSlices > 0 ? pairs / kSlices : 1;
    double best = 1e300;
    long i = 0;
    while (i < pairs) {
        const long end = i + per_slice < pairs ? i + per_slice : pairs;
        const double t0 = now();
        for (; i < end; ++i) {
            unsigned slot = (unsigned)i % kRing;
            free(ring[slot]);
            ring[slot] = malloc(sizes[i % kSizes]);
            *(volatile char*)ring[slot] = 1;
        }
        const double t = (now() - t0) / (double)per_slice;
        if (t < best) best = t;
    }
    for (int k = 0; k < kRing; ++k) free(ring[k]);
    *(double*)out = best;
    return NULL;
}

int main(int argc, char** argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    pairs = argc > 2 ? atol(argv[2]) : 5000000;
    unsigned seed = 42;
    for (int i = 0; i < kSizes; ++i) {
        seed = seed * 1103515245u + 12345u;
        /* mostly small, some medium: 16..128 (3/4), 128..1024 (1/4) */
        sizes[i] = (seed >> 16) % 4 ? 16 + (seed >> 8) % 112 : 128 + (seed >> 8) % 896;
    }
    pthread_t th[64];
    double ns[64];
    if (threads > 64) threads = 64;
    for (int i = 0; i < threads; ++i) pthread_create(&th[i], NULL, worker, &ns[i]);
    double sum = 0;
    for (int i = 0; i < threads; ++i) {
        pthread_join(th[i], NULL);
        sum += ns[i];
    }
    printf("%.3f\n", sum / threads);
    return 0;
}
