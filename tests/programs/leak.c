/* Allocates and frees a mixed workload, then leaks exactly N objects of
   sizes 16, 32, ... (argv[1] = N). Its twin is the same program with N=0.
   With LEAK_SAY_USABLE set it says on stderr what malloc_usable_size gives
   the kept blocks in all: glibc may hand out a chunk larger than the
   request needs (a free chunk whose remainder would be too small to split),
   and where the heap's holes fall depends on which blocks were sampled. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

/* Global and volatile: the compiler may not elide these allocations. */
void* volatile keep[4096];
void* volatile churn;

int main(int argc, char** argv) {
    int n = argc > 1 ? atoi(argv[1]) : 0;
    for (int i = 0; i < 10000; ++i) {
        churn = malloc((size_t)(i % 512) + 1);
        free(churn);
    }
    size_t usable = 0;
    for (int i = 0; i < n && i < 4096; ++i) {
        keep[i] = malloc((size_t)(16 * (i % 64 + 1)));
        usable += malloc_usable_size(keep[i]);
    }
    if (getenv("LEAK_SAY_USABLE")) fprintf(stderr, "usable %zu\n", usable);
    printf("leaked %d\n", n);
    return 0;
}
