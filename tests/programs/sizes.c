/* Every size path of the agent's counting, exactly: blocks of sizes around
   the inline limit (1000/1016 usable bytes), large and mmapped ones, from
   every function of the malloc family, are made and freed, and with argv[1]
   = 1 one of each is leaked. Prints the leaked blocks' usable sizes (as
   glibc reports them), so the test knows the exact live bytes and the
   histogram buckets they must add; its twin (argv[1] = 0) leaks none. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const size_t kSizes[] = {0,    1,    8,    24,   25,    100,    512,     991,    992,   1000,   1001,
                                1008, 1009, 1016, 1017, 1024,  1500,   4096,    65536,  131072, 200000, 1 << 20};
enum { kCount = sizeof kSizes / sizeof kSizes[0], kWays = 9 };

void* volatile keep[kCount * kWays];

/* One block of n bytes, made the `way`-th way. */
static void* make(int way, size_t n) {
    void* p = NULL;
    switch (way) {
        case 0: return malloc(n);
        case 1: return calloc(1, n);
        case 2: return realloc(NULL, n);
        case 3: p = malloc(n / 2 + 1); return realloc(p, n + 1); /* a free and an allocation (not a free: n + 1) */
        case 4: return memalign(64, n);
        case 5: return aligned_alloc(256, (n + 255) & ~(size_t)255);
        case 6: return posix_memalign(&p, 32, n) == 0 ? p : NULL;
        case 7: return valloc(n);
        default: return reallocarray(NULL, n, 1);
    }
}

int main(int argc, char** argv) {
    const int leak = argc > 1 && atoi(argv[1]);
    for (int round = 0; round < 100; ++round)
        for (int w = 0; w < kWays; ++w)
            for (int i = 0; i < kCount; ++i) free(make(w, kSizes[i]));
    int n = 0;
    if (leak)
        for (int w = 0; w < kWays; ++w)
            for (int i = 0; i < kCount; ++i) {
                void* p = make(w, kSizes[i]);
                if (!p) return 1;
                memset(p, 1, kSizes[i]);
                keep[n++] = p;
            }
    printf("leaked");
    for (int i = 0; i < n; ++i) printf(" %zu", malloc_usable_size(keep[i]));
    printf("\n");
    return 0;
}
