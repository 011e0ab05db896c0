// Which allocator the program's malloc really is: the object that defines
// the real malloc the agent forwards to (dladdr), and whether that object
// exports jemalloc's mallctl.
#include "allocator.h"

#include <dlfcn.h>

#include <cstring>

#include "agent_facts.h"
#include "catalog.h"
#include "loaded_object.h"

namespace gometrics::collect {

namespace {

AllocatorBackend choose() {
    if (auto m = agent::switched_mallctl()) return jemalloc_backend(m);  // GOMETRICS_ALLOCATOR=jemalloc
    sys::LoadedObject object;
    if (!sys::object_of(agent::real_malloc_address(), object)) return {"unknown", nullptr};
    // glibc first: it has no mallctl to look for.
    if (std::strstr(object.path, "/libc.so.6")) return glibc_backend();
    // The executable itself has an empty path: dlopen(NULL) is its handle.
    void* h = dlopen(*object.path ? object.path : nullptr, RTLD_LAZY | RTLD_NOLOAD);
    if (h) {
        auto m = reinterpret_cast<MallctlFn>(dlsym(h, "mallctl"));
        dlclose(h);
        if (m) return jemalloc_backend(m);
    }
    return {"unknown", nullptr};
}

}  // namespace

const AllocatorBackend& allocator() {
    static const AllocatorBackend backend = choose();
    return backend;
}

uint64_t allocator_in_use_now() noexcept {
    AllocatorStats s{};
    const auto read = allocator().read;
    return read && read(s) ? s.in_use : 0;
}

}  // namespace gometrics::collect
