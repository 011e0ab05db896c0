/* Exercises the malloc family under GOMETRICS_ALLOCATOR=jemalloc: blocks
   from before the switch (early_blocks.c, preloaded after the agent) are
   read, reallocated (moved to jemalloc, contents kept) and freed; new blocks
   must be jemalloc's; threads and a forked child do the same concurrently.
   Prints "ok" and exits 0, or says what broke and exits 1. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef void** (*early_fn)(size_t**, int*);
typedef int (*mallctl_fn)(const char*, void*, size_t*, void*, size_t);

static int check_pattern(const unsigned char* p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; ++i)
        if (p[i] != (unsigned char)(seed + i * 7)) return 0;
    return 1;
}

#define FAIL(...) do { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

/* jemalloc's opinion on a pointer it owns (never ask about a foreign one:
   jemalloc 5.3 crashes). */
static void expect_jemalloc(mallctl_fn mallctl, void* p) {
    unsigned arena;
    size_t sz = sizeof arena;
    if (mallctl("arenas.lookup", &arena, &sz, &p, sizeof p) != 0) FAIL("%p is not jemalloc's", p);
}

static mallctl_fn g_mallctl;

static void* churn(void* arg) {
    unsigned seed = (unsigned)(size_t)arg;
    void* ring[128] = {0};
    for (int k = 0; k < 200000; ++k) {
        unsigned i = (seed = seed * 1103515245u + 12345u) >> 8;
        void** slot = &ring[i % 128];
        switch (i % 5) {
            case 0: free(*slot); *slot = malloc(i % 3000 + 1); break;
            case 1: free(*slot); *slot = calloc(1, i % 500 + 1); break;
            case 2: *slot = realloc(*slot, i % 70000 + 1); break;
            case 3: free(*slot); if (posix_memalign(slot, 64, i % 1000 + 1)) *slot = NULL; break;
            default: free(*slot); *slot = aligned_alloc(4096, 4096); break;
        }
        if (*slot && malloc_usable_size(*slot) == 0) FAIL("usable size 0");
        if (*slot) memset(*slot, (int)k, 1);
    }
    for (int j = 0; j < 128; ++j) free(ring[j]);
    return NULL;
}

int main(void) {
    early_fn early = (early_fn)dlsym(RTLD_DEFAULT, "early_blocks");
    void* je = dlopen("libjemalloc.so.2", RTLD_NOW | RTLD_NOLOAD);
    if (!early || !je) FAIL("needs early_blocks.so preloaded and libjemalloc loaded by the agent");
    g_mallctl = (mallctl_fn)dlsym(je, "mallctl");
    size_t* sizes;
    int n;
    void** blocks = early(&sizes, &n);

    void* fresh = malloc(100);
    expect_jemalloc(g_mallctl, fresh);
    free(fresh);

    pthread_t th[4];
    for (int i = 0; i < 4; ++i) pthread_create(&th[i], NULL, churn, (void*)(size_t)(i + 1));

    /* The early blocks, concurrently with the churn: usable sizes, then a
       third freed, a third grown, a third shrunk or realloc'd to 0. */
    for (int i = 0; i < n; ++i) {
        if (!check_pattern(blocks[i], sizes[i], (unsigned)i)) FAIL("early block %d corrupt", i);
        if (malloc_usable_size(blocks[i]) < sizes[i]) FAIL("early block %d: usable size too small", i);
    }
    pid_t child = fork();
    if (child == 0) {
        /* the child frees the parent's early blocks and allocates its own */
        for (int i = 0; i < n; ++i) free(blocks[i]);
        churn((void*)99);
        _exit(0);
    }
    for (int i = 0; i < n; ++i) {
        if (i % 3 == 0) {
            free(blocks[i]);
        } else if (i % 3 == 1) {
            unsigned char* q = realloc(blocks[i], sizes[i] * 2 + 1);
            if (!q || !check_pattern(q, sizes[i], (unsigned)i)) FAIL("grown early block %d lost its contents", i);
            expect_jemalloc(g_mallctl, q);
            free(q);
        } else if (i % 2) {
            if (realloc(blocks[i], 0) != NULL) FAIL("realloc(p, 0) must free and return NULL, as glibc does");
        } else {
            unsigned char* q = realloc(blocks[i], sizes[i] / 2 + 1);
            if (!q || !check_pattern(q, sizes[i] / 2 + 1, (unsigned)i)) FAIL("shrunk early block %d lost its contents", i);
            free(q);
        }
    }
    for (int i = 0; i < 4; ++i) pthread_join(th[i], NULL);
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FAIL("child failed: status %d", status);
    puts("ok");
    return 0;
}
