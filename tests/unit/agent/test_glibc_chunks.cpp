// The hot path reads glibc's chunk headers (agent/real.h): its arithmetic
// against glibc's own malloc_usable_size, and the bootstrap arena's header
// that must never pass for a small chunk. glibc's functions are taken from
// libc.so.6 itself, so a sanitizer's interceptors do not stand in for them.
#include <catch2/catch.hpp>
#include <dlfcn.h>

#include <vector>

#include "buckets.h"
#include "real.h"

using namespace gometrics::agent;

namespace {

struct Libc {
    void* (*malloc)(size_t);
    void (*free)(void*);
    void* (*memalign)(size_t, size_t);
    void* (*calloc)(size_t, size_t);
    size_t (*usable)(void*);
};

Libc libc() {
    void* h = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    REQUIRE(h);
    Libc l{reinterpret_cast<void* (*)(size_t)>(dlsym(h, "malloc")), reinterpret_cast<void (*)(void*)>(dlsym(h, "free")),
           reinterpret_cast<void* (*)(size_t, size_t)>(dlsym(h, "memalign")),
           reinterpret_cast<void* (*)(size_t, size_t)>(dlsym(h, "calloc")),
           reinterpret_cast<size_t (*)(void*)>(dlsym(h, "malloc_usable_size"))};
    REQUIRE((l.malloc && l.free && l.memalign && l.calloc && l.usable));
    return l;
}

// The header of p, read both ways, against glibc's answer.
void check_block(const Libc& l, void* p, size_t n) {
    REQUIRE(p);
    const size_t head = glibc::chunk_head(p), usable = l.usable(p);
    INFO("request " << n << " usable " << usable << " head " << head);
    CHECK(glibc::chunk_usable(head) == usable);
    CHECK(glibc::small_chunk(head) == (usable <= 1000));
    if (glibc::small_chunk(head)) {
        CHECK(glibc::small_chunk_usable(head) == usable);
        CHECK(gometrics::buckets::is_small(usable));
    }
}

}  // namespace

TEST_CASE("glibc chunk headers: malloc, calloc and memalign of every size up to 8 KiB, and mmapped blocks") {
    const Libc l = libc();
    std::vector<void*> held;  // kept live so blocks come from every bin and from the top chunk
    for (size_t n = 0; n <= 8192; ++n) {
        void* p = l.malloc(n);
        check_block(l, p, n);
        held.push_back(p);
        if (n % 7 == 0) {
            void* q = l.calloc(1, n);
            check_block(l, q, n);
            held.push_back(q);
        }
        if (n % 13 == 0) {
            void* q = l.memalign(size_t{64} << (n % 4), n);
            check_block(l, q, n);
            held.push_back(q);
        }
    }
    for (size_t n : {size_t{200000}, size_t{1} << 20, (size_t{1} << 24) + 5}) {  // past the mmap threshold
        void* p = l.malloc(n);
        check_block(l, p, n);
        held.push_back(p);
    }
    for (void* p : held) l.free(p);
}

TEST_CASE("bootstrap blocks: their size back, and never a small glibc chunk") {
    for (size_t n : {size_t{0}, size_t{1}, size_t{24}, size_t{32}, size_t{40}, size_t{1000}, size_t{1016}}) {
        for (size_t align : {size_t{16}, size_t{64}, size_t{4096}}) {
            void* p = bootstrap_alloc(n, align);
            REQUIRE(p);
            INFO("size " << n << " align " << align);
            CHECK(is_bootstrap(p));
            CHECK(reinterpret_cast<uintptr_t>(p) % align == 0);
            CHECK(bootstrap_usable_size(p) == n);
            CHECK_FALSE(glibc::small_chunk(glibc::chunk_head(p)));
        }
    }
}
