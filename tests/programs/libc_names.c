/* glibc's __libc_ names of its malloc family, called directly, as malloc
   wrappers written for __malloc_hook did. argv[1] = N: N blocks kept from
   __libc_malloc and N from __libc_calloc; N each from __libc_memalign,
   __libc_valloc and __libc_pvalloc, grown by __libc_realloc, then freed with
   __libc_free. */
#include <stdio.h>
#include <stdlib.h>

void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void* __libc_valloc(size_t);
void* __libc_pvalloc(size_t);
void __libc_free(void*);

int main(int argc, char** argv) {
    const int n = argc > 1 ? atoi(argv[1]) : 0;
    void** kept = malloc(2 * (size_t)n * sizeof *kept + 1);
    for (int i = 0; i < n; ++i) {
        kept[2 * i] = __libc_malloc(40);
        kept[2 * i + 1] = __libc_calloc(3, 16);
        void* blocks[3] = {__libc_memalign(64, 40), __libc_valloc(100), __libc_pvalloc(100)};
        for (int j = 0; j < 3; ++j) __libc_free(__libc_realloc(blocks[j], 200));
    }
    printf("kept %d\n", 2 * n);
    return 0;
}
