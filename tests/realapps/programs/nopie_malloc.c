/* A non-PIE executable that takes the address of malloc and free, as
   Debian's /usr/bin/python3 and node do: the linker gives them canonical PLT
   entries in the executable, so dlsym(RTLD_DEFAULT, "malloc") points here,
   yet every call still reaches a preloaded malloc. Makes N allocations of 100
   bytes through the function pointers and N through direct calls, freeing
   each the same way.
   Prints "malloc_in_executable=0|1", "usable=U" (malloc_usable_size of one
   block) and "blocks=2N".
     nopie_malloc N */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* volatile: the compiler must call through the pointers, not fold them
   back into direct calls. Assigned in code, not in a static initializer:
   an address taken in non-PIE code is what needs the canonical PLT entry
   (an initializer gets a dynamic relocation instead). */
static void* (*volatile malloc_fn)(size_t);
static void (*volatile free_fn)(void*);

int main(int argc, char** argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000;
    malloc_fn = malloc;
    free_fn = free;
    Dl_info here, in_malloc;
    int in_exe = dladdr((void*)&malloc_fn, &here) && dladdr(dlsym(RTLD_DEFAULT, "malloc"), &in_malloc) &&
                 here.dli_fbase == in_malloc.dli_fbase;
    size_t usable = 0;
    for (long i = 0; i < n; ++i) {
        char* p = malloc_fn(100);
        memset(p, (int)i, 100);
        usable = malloc_usable_size(p);
        free_fn(p);
    }
    for (long i = 0; i < n; ++i) {
        char* p = malloc(100);
        memset(p, (int)i, 100);
        free(p);
    }
    printf("malloc_in_executable=%d\nusable=%zu\nblocks=%ld\n", in_exe, usable, 2 * n);
    return 0;
}
