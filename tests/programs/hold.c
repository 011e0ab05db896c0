/* Holds argv[1] MiB of live objects (mixed sizes) and prints jemalloc's own
   stats.allocated for them, then waits for stdin to close, so a test can
   read the agent's /memory/classes/heap/objects:bytes at the same moment.
   jemalloc's mallctl is found wherever malloc is served from: linked
   (-ljemalloc), or the agent's private copy (GOMETRICS_ALLOCATOR=jemalloc). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*mallctl_fn)(const char*, void*, size_t*, void*, size_t);

int main(int argc, char** argv) {
    /* Unbuffered: stdin's buffer would be malloc'd at the first read, after
       the line that tells a test to take its reading. */
    setvbuf(stdin, NULL, _IONBF, 0);
    size_t target = (size_t)(argc > 1 ? atoi(argv[1]) : 100) << 20;
    mallctl_fn mallctl = (mallctl_fn)dlsym(RTLD_DEFAULT, "mallctl");
    if (!mallctl) {
        void* h = dlopen("libjemalloc.so.2", RTLD_NOW | RTLD_NOLOAD);
        if (h) mallctl = (mallctl_fn)dlsym(h, "mallctl");
    }
    if (!mallctl) {
        fprintf(stderr, "not running on jemalloc\n");
        return 1;
    }
    size_t held = 0, count = 0, cap = 1 << 20;
    void** keep = malloc(cap * sizeof *keep);
    unsigned seed = 7;
    while (held < target && count < cap) {
        seed = seed * 1103515245u + 12345u;
        size_t n = (seed >> 8) % 4 ? 16 + (seed >> 12) % 2000 : 4096 + (seed >> 12) % 60000;
        keep[count] = malloc(n);
        memset(keep[count], 1, n);
        held += n;
        ++count;
    }
    uint64_t epoch = 1;
    size_t sz = sizeof epoch, allocated = 0;
    mallctl("epoch", &epoch, &sz, &epoch, sz);
    sz = sizeof allocated;
    if (mallctl("stats.allocated", &allocated, &sz, NULL, 0) != 0) return 1;
    printf("%zu %zu\n", allocated, count);
    fflush(stdout);
    while (getchar() != EOF) {
    }
    return 0;
}
