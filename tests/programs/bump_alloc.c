/* A test-only allocator that is async-signal-safe: lock-free bump
   allocation from one big mapping, free is a no-op. Preloaded behind the
   agent (LD_PRELOAD="libgometrics.so libbump_alloc.so") so the agent's
   counting, not the allocator, is what a signal handler can interrupt. */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#define REGION (4UL << 30)
#define HEADER 16 /* the usable size, in front of each block */

static unsigned char* region;
static _Atomic size_t used;

static void* bump(size_t n, size_t align) {
    if (!region) {
        void* r = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        unsigned char* expected = NULL;
        if (!atomic_compare_exchange_strong((_Atomic(unsigned char*)*)&region, &expected, (unsigned char*)r))
            munmap(r, REGION);
    }
    if (align < HEADER) align = HEADER;
    size_t usable = (n + 15) & ~(size_t)15;
    size_t start = atomic_fetch_add(&used, usable + HEADER + align);
    if (start + usable + HEADER + align > REGION) {
        errno = ENOMEM;
        return NULL;
    }
    size_t at = (start + HEADER + align - 1) & ~(align - 1);
    memcpy(region + at - sizeof(size_t), &usable, sizeof usable);
    return region + at;
}

size_t malloc_usable_size(void* p) {
    size_t n = 0;
    if (p) memcpy(&n, (unsigned char*)p - sizeof n, sizeof n);
    return n;
}
void* malloc(size_t n) { return bump(n, HEADER); }
void free(void* p) { (void)p; }
void* calloc(size_t n, size_t s) { return n && s > (size_t)-1 / n ? NULL : bump(n * s, HEADER); } /* fresh pages: zero */
void* realloc(void* p, size_t n) {
    void* q = bump(n, HEADER);
    if (q && p) memcpy(q, p, malloc_usable_size(p) < n ? malloc_usable_size(p) : n);
    return q;
}
void* memalign(size_t a, size_t n) { return bump(n, a); }
void* aligned_alloc(size_t a, size_t n) { return bump(n, a); }
int posix_memalign(void** out, size_t a, size_t n) { return (*out = bump(n, a)) ? 0 : ENOMEM; }
void* valloc(size_t n) { return bump(n, 4096); }
void* pvalloc(size_t n) { return bump((n + 4095) & ~(size_t)4095, 4096); }
void* reallocarray(void* p, size_t n, size_t s) { return n && s > (size_t)-1 / n ? NULL : realloc(p, n * s); }
