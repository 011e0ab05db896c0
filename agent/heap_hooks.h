// What the malloc hooks (hooks_malloc.cpp) lend to other hooks that allocate
// without reaching them: operator new and delete of an allocator that serves
// them itself (hooks_new.cpp).
#pragma once

#include <cstddef>

#pragma GCC visibility push(hidden)

namespace gometrics::agent {

// Counts p, if any, as malloc's hook counts its result, for a request of
// `request` bytes when known (jemalloc's table, jemalloc_sizes.h); returns p.
void* count_allocation(void* p, size_t request = ~size_t{0}) noexcept;
// Counts the coming release of p, if any, as free's hook does.
void count_release(void* p) noexcept;
// Counts the release of `usable` bytes on the calling thread's slot for
// another allocator (tls_words.slot, with the kSlowSlot marker).
void count_release_other(size_t usable) noexcept;

}  // namespace gometrics::agent

#pragma GCC visibility pop
