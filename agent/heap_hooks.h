// What the malloc hooks (hooks_malloc.cpp) lend to other hooks that allocate
// without reaching them: operator new and delete of an allocator that serves
// them itself (hooks_new.cpp).
#pragma once

#pragma GCC visibility push(hidden)

namespace gometrics::agent {

// Counts p, if any, as malloc's hook counts its result; returns p.
void* count_allocation(void* p) noexcept;
// Counts the coming release of p, if any, as free's hook does.
void count_release(void* p) noexcept;

}  // namespace gometrics::agent

#pragma GCC visibility pop
