// Which allocator the program's malloc really is: the object that defines
// the real malloc the agent forwards to (dladdr), and whether that object
// exports jemalloc's mallctl.
#include "allocator.h"

#include <dlfcn.h>

#include <cstring>

#include "agent_facts.h"

namespace gometrics::collect {

namespace {

AllocatorBackend choose() {
    if (auto m = agent::switched_mallctl()) return jemalloc_backend(m);  // GOMETRICS_ALLOCATOR=jemalloc
    Dl_info info{};
    void* real_malloc = agent::real_malloc_address();
    if (!dladdr(real_malloc, &info) || !info.dli_fname) return {"unknown", nullptr};
    // The executable itself has an empty dli_fname: dlopen(NULL) is its handle.
    void* h = dlopen(*info.dli_fname ? info.dli_fname : nullptr, RTLD_LAZY | RTLD_NOLOAD);
    if (h) {
        auto m = reinterpret_cast<MallctlFn>(dlsym(h, "mallctl"));
        dlclose(h);
        if (m) return jemalloc_backend(m);
    }
    if (std::strstr(info.dli_fname, "/libc.so.6")) return glibc_backend();
    return {"unknown", nullptr};
}

}  // namespace

const AllocatorBackend& allocator() {
    static const AllocatorBackend backend = choose();
    return backend;
}

}  // namespace gometrics::collect
