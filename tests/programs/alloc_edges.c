/* The malloc family at its edges: memalign, aligned_alloc, posix_memalign,
   valloc and pvalloc over a grid of alignments (zero, not powers of two,
   past SIZE_MAX / 2 + 1) and sizes, then malloc, calloc, realloc and
   reallocarray of sizes no allocator can give. One line each of what came
   back (a block aligned as asked, rounded up to a power of two, or NULL)
   and errno. The output must not depend on the agent, nor on the allocator
   it switched to. */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char* outcome(void* p, size_t align) {
    if (!p) return "NULL";
    size_t a = 1;
    while (a < align && a <= SIZE_MAX / 2) a <<= 1;
    const int aligned = (uintptr_t)p % a == 0;
    free(p);
    return aligned ? "block" : "MISALIGNED";
}

int main(void) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t aligns[] = {0, 1, 3, 8, 16, 24, 48, 4096, 3000, (size_t)1 << 20, (size_t)1 << 63,
                             ((size_t)1 << 63) + 1, SIZE_MAX};
    const size_t sizes[] = {0, 1, 100, 5000, SIZE_MAX / 2, SIZE_MAX - 10};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; ++i)
        for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; ++j) {
            const size_t a = aligns[i], n = sizes[j];
            errno = 0;
            const char* m = outcome(memalign(a, n), a);
            const int em = errno;
            errno = 0;
            const char* aa = outcome(aligned_alloc(a, n), a);
            const int ea = errno;
            void* p = (void*)1;
            errno = 0;
            const int rc = posix_memalign(&p, a, n);
            const int ep = errno;
            printf("align %zx size %zx: memalign %s %d, aligned_alloc %s %d, posix_memalign %d %s %d\n", a, n, m, em,
                   aa, ea, rc, rc ? (p == (void*)1 ? "untouched" : "CHANGED") : outcome(p, a), ep);
        }
    for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; ++j) {
        errno = 0;
        const char* v = outcome(valloc(sizes[j]), page);
        const int ev = errno;
        errno = 0;
        const char* pv = outcome(pvalloc(sizes[j]), page);
        printf("size %zx: valloc %s %d, pvalloc %s %d\n", sizes[j], v, ev, pv, errno);
    }
    const size_t huge[] = {SIZE_MAX / 2, SIZE_MAX - 10};
    for (size_t i = 0; i < 2; ++i) {
        const size_t n = huge[i];
        errno = 0;
        const char* m = outcome(malloc(n), 1);
        const int em = errno;
        errno = 0;
        const char* c = outcome(calloc(n, 3), 1);
        const int ec = errno;
        void* const q = malloc(10);
        errno = 0;
        void* grown = realloc(q, n);
        const int er = errno;
        errno = 0;
        void* grown_array = grown ? NULL : reallocarray(q, n, 3);  /* q lives on when realloc fails */
        const int era = errno;
        printf("size %zx: malloc %s %d, calloc %s %d, realloc %s %d, reallocarray %s %d\n", n, m, em, c, ec,
               grown ? "block" : "NULL", er, grown_array ? "block" : "NULL", era);
        free(grown ? grown : grown_array ? grown_array : q);
    }
    errno = 0;
    void* z = realloc(NULL, 0);
    printf("realloc(NULL, 0): %s %d\n", z ? "block" : "NULL", errno);
    errno = 0;
    printf("realloc(p, 0): %s %d\n", realloc(z, 0) ? "block" : "NULL", errno);
    return 0;
}
