/* A C program that dlopens a C++ library without RTLD_GLOBAL, as Python
 * loads its extension modules: the library's operator new is then not
 * where the agent's RTLD_NEXT looks, and its refused allocations must still
 * reach its own new_handler and throw the bad_alloc its catch knows.
 *   cxx_local LIBRARY */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char** argv) {
    if (argc < 2) return 2;
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        printf("dlopen: %s\n", dlerror());
        return 1;
    }
    int (*run)(void);
    *(void**)&run = dlsym(lib, "cxx_local_run");
    const int rc = run ? run() : 1;
    printf("returned %d\n", rc);
    return rc;
}
