/* glibc moves its mmap threshold up each time a block above it is freed: a
   tool that did so at start-up would change where the program's blocks come
   from (and its RSS). Prints, for blocks of 200 KB and 1 MiB (above the
   default threshold of 128 KiB), whether glibc mmapped them, and does the
   same again after freeing a 1 MiB block itself. The output must not depend
   on the agent. */
#include <stdio.h>
#include <stdlib.h>

static int mmapped(size_t n) {
    void* p = malloc(n);
    const int m = (int)((((size_t*)p)[-1] & 2) != 0); /* IS_MMAPPED in glibc's chunk header */
    free(p);
    return m;
}

int main(void) {
    const int a = mmapped(200000), b = mmapped(1 << 20);
    const int c = mmapped(200000); /* after the 1 MiB free: glibc raised its threshold */
    printf("200000:%d 1048576:%d after:%d\n", a, b, c);
    return 0;
}
