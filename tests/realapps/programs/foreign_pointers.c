/* Pointers the agent never saw allocated: blocks from glibc's
   __libc_malloc/__libc_memalign (as if allocated before the agent loaded, or
   by a library bound past it) are freed, reallocated and measured through
   the interposed free, realloc and malloc_usable_size. They must pass
   straight through. Prints "foreign=N ok".
     foreign_pointers N */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void* __libc_malloc(size_t);
extern void* __libc_memalign(size_t, size_t);

int main(int argc, char** argv) {
    const long n = argc > 1 ? atol(argv[1]) : 1000;
    for (long i = 0; i < n; ++i) {
        char* a = __libc_malloc(32 + (size_t)(i % 200));
        char* b = __libc_malloc(100);
        char* c = __libc_memalign(64, 256);
        if (!a || !b || !c || malloc_usable_size(a) < 32 + (size_t)(i % 200)) return 1;
        memset(b, 'b', 100);
        b = realloc(b, 5000);
        if (!b || b[99] != 'b') return 1;
        free(a);
        free(b);
        free(c);
    }
    printf("foreign=%ld ok\n", n);
    return 0;
}
