/* dlopen and dlclose of a library that allocates, ROUNDS times; each round
   builds N nodes in the library. MODE "local" frees them in the library;
   "cross" frees them here (allocated in one object, freed in another);
   "deepbind" opens with RTLD_DEEPBIND (the library binds malloc to libc's
   directly, past the agent) and frees here.
     dlopen_app PLUGIN_PATH ROUNDS N local|cross|deepbind */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node {
    struct node* next;
    long value;
};

int main(int argc, char** argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: dlopen_app PLUGIN ROUNDS N local|cross|deepbind\n");
        return 2;
    }
    const long rounds = atol(argv[2]), n = atol(argv[3]);
    const char* mode = argv[4];
    const int flags = RTLD_NOW | RTLD_LOCAL | (strcmp(mode, "deepbind") == 0 ? RTLD_DEEPBIND : 0);
    long total = 0;
    for (long r = 0; r < rounds; ++r) {
        void* h = dlopen(argv[1], flags);
        if (!h) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            return 1;
        }
        /* POSIX's way to convert a dlsym result to a function pointer */
        struct node* (*build)(long);
        long (*sum)(const struct node*);
        void (*release)(struct node*);
        *(void**)&build = dlsym(h, "plugin_build");
        *(void**)&sum = dlsym(h, "plugin_sum");
        *(void**)&release = dlsym(h, "plugin_release");
        if (!build || !sum || !release) {
            fprintf(stderr, "dlsym: %s\n", dlerror());
            return 1;
        }
        struct node* list = build(n);
        total += sum(list);
        if (strcmp(mode, "local") == 0) {
            release(list);
        } else {
            while (list) {
                struct node* next = list->next;
                free(list);
                list = next;
            }
        }
        if (dlclose(h) != 0) {
            fprintf(stderr, "dlclose: %s\n", dlerror());
            return 1;
        }
    }
    printf("rounds=%ld total=%ld\n", rounds, total);
    return 0;
}
