/* A C program: no libstdc++ in the process, so the agent's operator new and
   delete have no next definition and use their own. argv[1] = N blocks of
   48 bytes through new and delete, then a nothrow new that must fail (the
   agent's runtime throws and catches bad_alloc inside). With no argument it
   allocates nothing at all. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void* (*new_fn)(size_t);
typedef void* (*new_nothrow_fn)(size_t, const void*);
typedef void (*delete_fn)(void*);

void* volatile keep;

/* POSIX's way from dlsym's object pointer to a function pointer. */
#define FIND(fn, name)                            \
    do {                                          \
        void* found = dlsym(RTLD_DEFAULT, name);  \
        if (!found) return missing();             \
        memcpy(&fn, &found, sizeof fn);           \
    } while (0)

static int missing(void) {
    fputs("c_operator_new: no operator new in the process\n", stderr);
    return 1;
}

int main(int argc, char** argv) {
    if (argc < 2) return 0;
    new_fn op_new;
    new_nothrow_fn op_new_nothrow;
    delete_fn op_delete;
    FIND(op_new, "_Znwm");
    FIND(op_new_nothrow, "_ZnwmRKSt9nothrow_t");
    FIND(op_delete, "_ZdlPv");
    const int n = atoi(argv[1]);
    for (int i = 0; i < n; ++i) {
        keep = op_new(48);
        op_delete(keep);
    }
    char tag = 0;
    if (op_new_nothrow((size_t)-1 / 4, &tag) != NULL) return 2;
    printf("done %d\n", n);
    return 0;
}
