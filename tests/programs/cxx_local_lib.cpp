// The C++ library cxx_local.c loads: operator new refused in every form,
// with and without a new_handler, each outcome printed.
#include <cstdio>
#include <cstdlib>
#include <new>

namespace {
void* reserve;
int handler_calls;
// Frees a reserve on its first call (the retry may then succeed for a
// small block), gives up on the second.
void handler() {
    ++handler_calls;
    if (reserve) {
        std::free(reserve);
        reserve = nullptr;
    } else {
        std::set_new_handler(nullptr);
    }
}
// Beyond any address space: every form is refused.
constexpr std::size_t kHuge = std::size_t{1} << 62;
}  // namespace

extern "C" int cxx_local_run() {
    try {
        void* p = ::operator new(kHuge);
        std::printf("new: %p\n", p);
    } catch (const std::bad_alloc&) {
        std::printf("new: bad_alloc caught\n");
    }
    try {
        void* p = ::operator new[](kHuge, std::align_val_t{64});
        std::printf("aligned new[]: %p\n", p);
    } catch (const std::bad_alloc&) {
        std::printf("aligned new[]: bad_alloc caught\n");
    }
    std::printf("nothrow new: %s\n", ::operator new(kHuge, std::nothrow) ? "a block" : "null");
    std::printf("aligned nothrow new: %s\n",
                ::operator new(kHuge, std::align_val_t{64}, std::nothrow) ? "a block" : "null");
    reserve = std::malloc(64);
    std::set_new_handler(handler);
    try {
        void* p = ::operator new(kHuge);
        std::printf("new with a handler: %p\n", p);
    } catch (const std::bad_alloc&) {
        std::printf("new with a handler: bad_alloc caught after %d calls\n", handler_calls);
    }
    int* small = new int[16];
    delete[] small;
    return 0;
}
