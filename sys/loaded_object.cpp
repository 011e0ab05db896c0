#include "loaded_object.h"

#include <link.h>

namespace gometrics::sys {

namespace {

struct Search {
    uintptr_t addr;
    LoadedObject* out;
    bool found;
};

int visit(dl_phdr_info* info, size_t, void* data) {
    auto* s = static_cast<Search*>(data);
    uintptr_t lowest = UINTPTR_MAX;
    bool inside = false;
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_LOAD) continue;
        const uintptr_t start = info->dlpi_addr + ph.p_vaddr;
        if (start < lowest) lowest = start;
        if (s->addr - start < ph.p_memsz) inside = true;
    }
    if (!inside) return 0;
    // Where its mapping starts, as dladdr's dli_fbase: never 0, even for a
    // non-PIE executable (whose load bias is).
    s->out->base = lowest & ~uintptr_t{4095};
    s->out->path = info->dlpi_name ? info->dlpi_name : "";
    s->found = true;
    return 1;
}

}  // namespace

bool object_of(const void* addr, LoadedObject& out) noexcept {
    Search s{reinterpret_cast<uintptr_t>(addr), &out, false};
    dl_iterate_phdr(visit, &s);
    return s.found;
}

}  // namespace gometrics::sys
