// Which loaded object an address lies in: its load base and path, from the
// program headers (dl_iterate_phdr). dladdr answers the same but also looks
// for the nearest symbol, walking the object's symbol table: far dearer at
// start-up (docs/overhead.md).
#pragma once

#include <cstdint>

namespace gometrics::sys {

struct LoadedObject {
    uintptr_t base = 0;
    const char* path = nullptr;  // "" for the executable itself, as dladdr says it
};

// False if no loaded object maps addr.
bool object_of(const void* addr, LoadedObject& out) noexcept;

}  // namespace gometrics::sys
