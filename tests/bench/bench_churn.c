/* Realistic malloc churn: each of T threads keeps its own table of 4,096 live
   blocks and, on each of N steps, frees a random one and allocates a new one
   in its place. Sizes: 70% 16-128 B, 25% 129 B-1 KiB, 5% 1-8 KiB, drawn
   with the slot from a fixed-seed PRNG, so every run and every allocator
   sees the same sequence. Unlike bench_malloc's short ring, the blocks stay
   live long enough to scatter over the heap, as in real programs.
     bench_churn STEPS [THREADS]      (THREADS 1 or 2, default 1)
   With BENCH_CHURN_DLOPEN=PATH it first loads PATH with dlopen: the agent
   loaded late counts as an attached one does, which callgrind can measure
   (it cannot follow a ptrace attach).
   Prints a checksum of the bytes read back (it depends only on STEPS and
   THREADS), then "WALL_NS CPU_NS FASTEST_NS" per pair, per thread, averaged
   over the threads: the whole run in wall time, the whole run in the
   thread's CPU time (what a machine shared with other work disturbs least),
   and the fastest twentieth of the run in wall time (bench_malloc's figure). */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { kLive = 4096, kSlices = 20 };

struct worker {
    uint64_t rng;
    long steps;
    double ns_per_pair, cpu_ns_per_pair, fastest;
    uint64_t checksum;
};

static double clock_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}
static double now(void) { return clock_ns(CLOCK_MONOTONIC); }

/* xorshift64*: a few instructions, so the allocator dominates the pair. */
static inline uint64_t next(uint64_t* s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* n in [0, range): the high bits times the range, no division. */
static inline uint32_t below(uint32_t bits, uint32_t range) { return (uint32_t)(((uint64_t)bits * range) >> 32); }

static inline size_t draw_size(uint64_t r) {
    uint32_t lo = (uint32_t)r, pick = below((uint32_t)(r >> 32), 100);
    if (pick < 70) return 16 + below(lo, 113);    /* 16..128 */
    if (pick < 95) return 129 + below(lo, 896);   /* 129..1024 */
    return 1025 + below(lo, 7168);                /* 1025..8192 */
}

static void* work(void* arg) {
    struct worker* w = arg;
    unsigned char* live[kLive];
    for (int i = 0; i < kLive; ++i) {
        size_t n = draw_size(next(&w->rng));
        live[i] = malloc(n);
        if (!live[i]) abort();
        live[i][0] = (unsigned char)n;
    }
    const long per_slice = w->steps / kSlices > 0 ? w->steps / kSlices : 1;
    double best = 1e300, start = now(), cpu_start = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    uint64_t sum = 0;
    long i = 0;
    while (i < w->steps) {
        const long end = i + per_slice < w->steps ? i + per_slice : w->steps;
        const long first = i;
        const double t0 = now();
        for (; i < end; ++i) {
            uint64_t r = next(&w->rng);
            uint32_t slot = below((uint32_t)r, kLive);
            sum += live[slot][0];  /* read back before free: the work cannot be optimised away */
            free(live[slot]);
            size_t n = draw_size(next(&w->rng));
            live[slot] = malloc(n);
            if (!live[slot]) abort();
            live[slot][0] = (unsigned char)(n ^ slot);
        }
        const double t = (now() - t0) / (double)(end - first);
        if (t < best) best = t;
    }
    w->ns_per_pair = w->steps ? (now() - start) / (double)w->steps : 0;
    w->cpu_ns_per_pair = w->steps ? (clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu_start) / (double)w->steps : 0;
    w->fastest = w->steps ? best : 0;
    for (int k = 0; k < kLive; ++k) {
        sum += live[k][0];
        free(live[k]);
    }
    w->checksum = sum;
    return NULL;
}

static long parse(const char* s, const char* what, long lo, long hi) {
    char* end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "bench_churn: %s must be an integer from %ld to %ld, not '%s'\n", what, lo, hi, s);
        exit(2);
    }
    return v;
}

int main(int argc, char** argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: bench_churn STEPS [THREADS]\n");
        return 2;
    }
    long steps = parse(argv[1], "STEPS", 0, 1000000000000L);
    int threads = argc > 2 ? (int)parse(argv[2], "THREADS", 1, 2) : 1;
    const char* late = getenv("BENCH_CHURN_DLOPEN");
    if (late && *late && !dlopen(late, RTLD_NOW)) {
        fprintf(stderr, "bench_churn: %s\n", dlerror());
        return 1;
    }
    struct worker w[2];
    pthread_t th[2];
    for (int t = 0; t < threads; ++t) {
        memset(&w[t], 0, sizeof w[t]);
        w[t].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1);
        w[t].steps = steps;
    }
    if (threads == 1) {
        work(&w[0]);  /* no thread of our own: a single-threaded program, as most are */
    } else {
        for (int t = 0; t < threads; ++t) {
            int err = pthread_create(&th[t], NULL, work, &w[t]);
            if (err) {
                fprintf(stderr, "bench_churn: pthread_create: %s\n", strerror(err));
                return 1;
            }
        }
        for (int t = 0; t < threads; ++t) pthread_join(th[t], NULL);
    }
    double ns = 0, cpu = 0, fastest = 0;
    uint64_t checksum = 0;
    for (int t = 0; t < threads; ++t) {
        ns += w[t].ns_per_pair / threads;
        cpu += w[t].cpu_ns_per_pair / threads;
        fastest += w[t].fastest / threads;
        checksum += w[t].checksum;
    }
    printf("checksum %llu\n%.3f %.3f %.3f\n", (unsigned long long)checksum, ns, cpu, fastest);
    return 0;
}
