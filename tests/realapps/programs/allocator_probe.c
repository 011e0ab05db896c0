/* Which allocator serves this process, and does malloc still work through
   the agent? Allocates N blocks of 200 bytes, frees them, and asks jemalloc
   (found with dlsym, so the same source works linked with -ljemalloc or
   with libjemalloc preloaded) how many bytes this thread allocated.
   Prints "allocator=jemalloc" or "allocator=other", then "blocks=N".
     allocator_probe N */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*mallctl_fn)(const char*, void*, size_t*, void*, size_t);

static uint64_t thread_allocated(mallctl_fn mallctl) {
    uint64_t v = 0;
    size_t len = sizeof v;
    if (!mallctl || mallctl("thread.allocated", &v, &len, NULL, 0) != 0) return 0;
    return v;
}

int main(int argc, char** argv) {
    /* Unbuffered: stdin's buffer would be malloc'd at the first read, after
       the line that tells a test to take its reading. */
    setvbuf(stdin, NULL, _IONBF, 0);
    long n = argc > 1 ? atol(argv[1]) : 1000;
    mallctl_fn mallctl;
    *(void**)&mallctl = dlsym(RTLD_DEFAULT, "mallctl"); /* POSIX's way to convert a dlsym result */
    uint64_t before = thread_allocated(mallctl);
    char** blocks = n ? calloc((size_t)n, sizeof *blocks) : NULL;
    for (long i = 0; i < n; ++i) {
        blocks[i] = malloc(200);
        memset(blocks[i], (int)i, 200);
    }
    uint64_t after = thread_allocated(mallctl);
    for (long i = 0; i < n; ++i) free(blocks[i]);
    free(blocks);
    /* jemalloc counted our blocks only if it is the allocator malloc reaches */
    printf("allocator=%s\nblocks=%ld\n", n && after - before >= (uint64_t)n * 200 ? "jemalloc" : "other", n);
    return 0;
}
