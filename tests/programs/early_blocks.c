/* A library preloaded after the agent: its constructor runs before the
   agent's, so under GOMETRICS_ALLOCATOR=jemalloc these blocks are glibc's,
   allocated before the switch. switch_check.c frees and reallocs them.
   With EARLY_THREAD set, it also starts a thread, which the switch refuses. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { kBlocks = 64 };
static void* blocks[kBlocks];
static size_t sizes[kBlocks];

static void fill(unsigned char* p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; ++i) p[i] = (unsigned char)(seed + i * 7);
}

static void* idle(void* arg) {
    (void)arg;
    sleep(1);
    return NULL;
}

__attribute__((constructor)) static void allocate_early(void) {
    if (getenv("EARLY_THREAD")) {
        pthread_t t;
        if (pthread_create(&t, NULL, idle, NULL) == 0) pthread_detach(t);
    }
    for (int i = 0; i < kBlocks; ++i) {
        /* small, medium, and large (1 MiB: mmapped by glibc by default) */
        sizes[i] = i % 8 == 7 ? (size_t)1 << 20 : (size_t)(16 << (i % 8));
        blocks[i] = malloc(sizes[i]);
        if (blocks[i]) fill(blocks[i], sizes[i], (unsigned)i);
    }
}

/* The blocks, their sizes and the fill pattern, for the checker. */
void** early_blocks(size_t** out_sizes, int* count) {
    *out_sizes = sizes;
    *count = kBlocks;
    return blocks;
}
