// operator new and delete, interposed to forward and, where they do not
// reach malloc, to count.
//
// libstdc++'s operator new calls malloc, where our hook counts the block.
// jemalloc's and tcmalloc's serve it themselves, so a C++ program on one of
// them (preloaded after the agent, or linked) used to allocate unseen.
// Each operator here jumps through a table to the next
// definition (dlsym RTLD_NEXT: what the program would have bound to without
// us). When that definition lives in the object that also serves malloc, the
// table points at wrappers that forward and count like a malloc hook
// instead. The table starts with stubs that fill it in on first use.
//
// Which case applies is decided once per operator, by the objects the
// definitions live in. Only there: an operator new of some other object (a
// pool of its own) hands out blocks that malloc_usable_size must never see.
#include <dlfcn.h>
#include <link.h>

#include <climits>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

#include "heap_hooks.h"
#include "jemalloc_sizes.h"
#include "loaded_object.h"
#include "log.h"
#include "profile.h"
#include "real.h"
#include "slots.h"

namespace gometrics::agent {
namespace {

// X(member, operator, parameters, arguments, exception specification): the
// replaceable allocation functions; the symbol is "_" member.
#define GOMETRICS_NEW_FUNCTIONS(X)                                                                          \
    X(Znwm, new, (std::size_t n), (n), noexcept(false))                                                     \
    X(Znam, new[], (std::size_t n), (n), noexcept(false))                                                   \
    X(ZnwmSt11align_val_t, new, (std::size_t n, std::align_val_t a), (n, a), noexcept(false))               \
    X(ZnamSt11align_val_t, new[], (std::size_t n, std::align_val_t a), (n, a), noexcept(false))             \
    X(ZnwmRKSt9nothrow_t, new, (std::size_t n, const std::nothrow_t& t), (n, t), noexcept)                  \
    X(ZnamRKSt9nothrow_t, new[], (std::size_t n, const std::nothrow_t& t), (n, t), noexcept)                \
    X(ZnwmSt11align_val_tRKSt9nothrow_t, new, (std::size_t n, std::align_val_t a, const std::nothrow_t& t), \
      (n, a, t), noexcept)                                                                                  \
    X(ZnamSt11align_val_tRKSt9nothrow_t, new[], (std::size_t n, std::align_val_t a, const std::nothrow_t& t), \
      (n, a, t), noexcept)
// The deallocation functions, all noexcept; every first parameter is p.
#define GOMETRICS_DELETE_FUNCTIONS(X)                                                                  \
    X(ZdlPv, delete, (void* p), (p))                                                                   \
    X(ZdaPv, delete[], (void* p), (p))                                                                 \
    X(ZdlPvm, delete, (void* p, std::size_t n), (p, n))                                                \
    X(ZdaPvm, delete[], (void* p, std::size_t n), (p, n))                                              \
    X(ZdlPvSt11align_val_t, delete, (void* p, std::align_val_t a), (p, a))                             \
    X(ZdaPvSt11align_val_t, delete[], (void* p, std::align_val_t a), (p, a))                           \
    X(ZdlPvmSt11align_val_t, delete, (void* p, std::size_t n, std::align_val_t a), (p, n, a))          \
    X(ZdaPvmSt11align_val_t, delete[], (void* p, std::size_t n, std::align_val_t a), (p, n, a))        \
    X(ZdlPvRKSt9nothrow_t, delete, (void* p, const std::nothrow_t& t), (p, t))                         \
    X(ZdaPvRKSt9nothrow_t, delete[], (void* p, const std::nothrow_t& t), (p, t))                       \
    X(ZdlPvSt11align_val_tRKSt9nothrow_t, delete, (void* p, std::align_val_t a, const std::nothrow_t& t), \
      (p, a, t))                                                                                       \
    X(ZdaPvSt11align_val_tRKSt9nothrow_t, delete[], (void* p, std::align_val_t a, const std::nothrow_t& t), \
      (p, a, t))

struct Table {
#define GOMETRICS_MEMBER_NEW(member, op, params, args, spec) void* (*member) params spec;
#define GOMETRICS_MEMBER_DELETE(member, op, params, args) void (*member) params noexcept;
    GOMETRICS_NEW_FUNCTIONS(GOMETRICS_MEMBER_NEW)
#undef GOMETRICS_MEMBER_NEW
    GOMETRICS_DELETE_FUNCTIONS(GOMETRICS_MEMBER_DELETE)
#undef GOMETRICS_MEMBER_DELETE
};

template <class Fn>
[[gnu::always_inline]] inline Fn acquired(Fn& f) noexcept {
    return __atomic_load_n(&f, __ATOMIC_ACQUIRE);
}

void resolve() noexcept;

// The definitions that follow ours, complete before any target points at a
// wrapper that calls them.
constinit Table g_next{};

// Stubs: resolve, then go where the table now says.
#define GOMETRICS_STUB_NEW(member, op, params, args, spec) \
    void* stub_##member params spec { return resolve(), acquired(g_target.member) args; }
#define GOMETRICS_STUB_DELETE(member, op, params, args) \
    void stub_##member params noexcept { resolve(), acquired(g_target.member) args; }
extern Table g_target;
GOMETRICS_NEW_FUNCTIONS(GOMETRICS_STUB_NEW)
#undef GOMETRICS_STUB_NEW
GOMETRICS_DELETE_FUNCTIONS(GOMETRICS_STUB_DELETE)
#undef GOMETRICS_STUB_DELETE

// Where each operator goes: a stub, the next definition or a wrapper.
#define GOMETRICS_STUB_INIT(member, ...) .member = stub_##member,
constinit Table g_target{GOMETRICS_NEW_FUNCTIONS(GOMETRICS_STUB_INIT) GOMETRICS_DELETE_FUNCTIONS(GOMETRICS_STUB_INIT)};
#undef GOMETRICS_STUB_INIT

// Wrappers for an operator served by the allocator itself. It may reach our
// hooks after all: jemalloc's new calls malloc again after the program's
// new_handler ran, and its delete calls free, both through its PLT. Nothing
// runs guarded, so what a new_handler or a signal handler allocates and
// frees meanwhile, and the bad_alloc a refused new throws, count as usual.
// - new counts its block unless malloc's hook just did: the slow path keeps
//   the block it counted last, until that is freed (on another allocator's
//   path, until any block is freed: tls_words.last_counted). A signal
//   handler that allocates (or there, frees) between that count and the
//   return makes the block count twice. On jemalloc an unaligned new's size
//   is its table's for the request, as malloc's (jemalloc_sizes.h).
// - delete counts, and names the block to free's hook (tls_words.counted_free).
//   On jemalloc it sizes the block by the window around the real delete
//   (jemalloc_sizes.h), which its sized forms, freeing without free, need
//   anyway; a sample, or a thread with no slot yet, is counted first, asked.
constexpr std::size_t request_of(std::size_t n) noexcept { return n; }
constexpr std::size_t request_of(std::size_t n, const std::nothrow_t&) noexcept { return n; }
constexpr std::size_t request_of(std::size_t, std::align_val_t) noexcept { return jemalloc::kUnknown; }
constexpr std::size_t request_of(std::size_t, std::align_val_t, const std::nothrow_t&) noexcept {
    return jemalloc::kUnknown;
}

template <class Next>
[[gnu::always_inline]] inline void release_counted(void* p, Next next) noexcept {
    detail::ThreadWords& w = detail::tls_words;
    const uint64_t* freed = w.freed;
    const bool by_window =
        freed && p && detail::tls_slot == detail::marker(detail::kSlowSlot) && !profile::maybe_sampled(p);
    if (!by_window) count_release(p);
    w.counted_free = p;
    if (!freed) {
        next();
    } else {
        const uint64_t opened = jemalloc::open_window(freed);
        next();
        const uint64_t bytes = jemalloc::close_window(freed, opened);
        if (by_window) {
            w.last_counted = nullptr;  // as free's hook on that path
            count_release_other(bytes);
        }
    }
    w.counted_free = nullptr;
}

#define GOMETRICS_COUNT_NEW(member, op, params, args, spec)                                 \
    void* counting_##member params spec {                                                   \
        detail::tls_words.last_counted = nullptr;                                           \
        void* q = __atomic_load_n(&g_next.member, __ATOMIC_RELAXED) args;                   \
        return q == detail::tls_words.last_counted ? q : count_allocation(q, request_of args); \
    }
#define GOMETRICS_COUNT_DELETE(member, op, params, args)                                      \
    void counting_##member params noexcept {                                                  \
        release_counted(p, [&] { __atomic_load_n(&g_next.member, __ATOMIC_RELAXED) args; }); \
    }
GOMETRICS_NEW_FUNCTIONS(GOMETRICS_COUNT_NEW)
#undef GOMETRICS_COUNT_NEW
GOMETRICS_DELETE_FUNCTIONS(GOMETRICS_COUNT_DELETE)
#undef GOMETRICS_COUNT_DELETE

// The operator new of a libstdc++ the process loaded where RTLD_NEXT does
// not look: a C program that dlopens a C++ library without RTLD_GLOBAL (as
// Python does its extension modules), or loads it after the table was
// filled. That library's code knows only its own runtime's new_handler and
// std::bad_alloc: a refused allocation must go through them, or the
// library's catch misses our bad_alloc and the process terminates.
int find_libstdcxx(dl_phdr_info* info, size_t, void* path) {
    if (!info->dlpi_name || !std::strstr(info->dlpi_name, "/libstdc++.so")) return 0;
    std::strncpy(static_cast<char*>(path), info->dlpi_name, PATH_MAX - 1);
    return 1;
}
template <class Fn>
[[gnu::noinline, gnu::cold]] Fn process_cxx_new(const char* symbol) noexcept {
    char path[PATH_MAX] = {};
    dl_iterate_phdr(find_libstdcxx, path);
    void* object = path[0] ? dlopen(path, RTLD_LAZY | RTLD_NOLOAD) : nullptr;
    if (!object) return nullptr;
    auto fn = reinterpret_cast<Fn>(dlsym(object, symbol));  // its own: the object's scope, not the global one
    dlclose(object);  // only the reference RTLD_NOLOAD took
    return fn;
}

// A refused allocation handed to the process's runtime, when it has one:
// the variant of operator new asked for, so that its nothrow forms catch
// what it throws (an exception of that runtime, unwound by the process's
// libgcc, cannot be caught in our frames, whose unwinder is our own copy).
// Whether there was one to hand it to.
bool handed_to_process(std::size_t n, std::size_t align, bool nothrow, void*& p) {
    using Plain = void* (*)(std::size_t);
    using Aligned = void* (*)(std::size_t, std::align_val_t);
    using PlainNothrow = void* (*)(std::size_t, const std::nothrow_t&) noexcept;
    using AlignedNothrow = void* (*)(std::size_t, std::align_val_t, const std::nothrow_t&) noexcept;
    const bool aligned = align > alignof(std::max_align_t);
    if (!aligned && !nothrow) {
        if (auto next = process_cxx_new<Plain>("_Znwm")) return p = next(n), true;
    } else if (aligned && !nothrow) {
        if (auto next = process_cxx_new<Aligned>("_ZnwmSt11align_val_t")) return p = next(n, std::align_val_t(align)), true;
    } else if (!aligned) {
        if (auto next = process_cxx_new<PlainNothrow>("_ZnwmRKSt9nothrow_t")) return p = next(n, std::nothrow), true;
    } else if (auto next = process_cxx_new<AlignedNothrow>("_ZnwmSt11align_val_tRKSt9nothrow_t")) {
        return p = next(n, std::align_val_t(align), std::nothrow), true;
    }
    return false;
}

// What libstdc++ defines, for a process without it (a C program: the agent
// carries its own copy of the C++ runtime, hidden, so RTLD_NEXT may find no
// definition). Blocks come from malloc, whose hook counts them.
void* fallback_new(std::size_t n, std::size_t align, bool nothrow = false) {
    if (n == 0) n = 1;
    bool asked_process = false;
    for (;;) {
        void* p = nullptr;
        if (align <= alignof(std::max_align_t) ? (p = malloc(n)) != nullptr
                                               : posix_memalign(&p, align, n) == 0)
            return p;
        if (!asked_process) {
            asked_process = true;
            if (handed_to_process(n, align, nothrow, p)) return p;
        }
        std::new_handler handler = std::get_new_handler();
        if (!handler) throw std::bad_alloc();
        handler();
    }
}
void* fallback_new_impl(std::size_t n) { return fallback_new(n, 0); }
void* fallback_new_impl(std::size_t n, std::align_val_t a) { return fallback_new(n, std::size_t(a)); }
void* fallback_new_impl(std::size_t n, const std::nothrow_t&) noexcept {
    try {
        return fallback_new(n, 0, true);
    } catch (...) {
        return nullptr;
    }
}
void* fallback_new_impl(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    try {
        return fallback_new(n, std::size_t(a), true);
    } catch (...) {
        return nullptr;
    }
}
#define GOMETRICS_FALLBACK_NEW(member, op, params, args, spec) \
    void* fallback_##member params spec { return fallback_new_impl args; }
template <class... Rest>
void fallback_delete_impl(void* p, const Rest&...) noexcept {
    free(p);
}
#define GOMETRICS_FALLBACK_DELETE(member, op, params, args) \
    void fallback_##member params noexcept { fallback_delete_impl args; }
GOMETRICS_NEW_FUNCTIONS(GOMETRICS_FALLBACK_NEW)
#undef GOMETRICS_FALLBACK_NEW
GOMETRICS_DELETE_FUNCTIONS(GOMETRICS_FALLBACK_DELETE)
#undef GOMETRICS_FALLBACK_DELETE

template <class Fn>
bool find_next(Fn& to, const char* symbol) noexcept {
    __atomic_store_n(&to, reinterpret_cast<Fn>(dlsym(RTLD_NEXT, symbol)), __ATOMIC_RELAXED);
    return to != nullptr;
}

// Idempotent, with no in-progress state: racing threads, or a forked child
// whose parent was half-way, write the same values again.
void resolve() noexcept {
    real();  // the malloc family, for the object that serves malloc
    // libstdc++ defines all twenty (GCC 7 and later); without it, ours.
#define GOMETRICS_FIND(member, ...) \
    if (!find_next(g_next.member, "_" #member)) __atomic_store_n(&g_next.member, &fallback_##member, __ATOMIC_RELAXED);
    GOMETRICS_NEW_FUNCTIONS(GOMETRICS_FIND)
    GOMETRICS_DELETE_FUNCTIONS(GOMETRICS_FIND)
#undef GOMETRICS_FIND
    // Each operator on its own: tcmalloc or jemalloc may lack a form, whose
    // next definition is then libstdc++'s.
    sys::LoadedObject of_malloc, of_next;
    const uintptr_t malloc_object =
        sys::object_of(reinterpret_cast<void*>(detail::found_malloc()), of_malloc) ? of_malloc.base : 0;
    auto serves_itself = [malloc_object, &of_next](auto* next) {
        return malloc_object && sys::object_of(reinterpret_cast<void*>(next), of_next) && of_next.base == malloc_object;
    };
#define GOMETRICS_PUBLISH(member, ...)                                                                   \
    __atomic_store_n(&g_target.member, serves_itself(g_next.member) ? counting_##member : g_next.member, \
                     __ATOMIC_RELEASE);
    GOMETRICS_NEW_FUNCTIONS(GOMETRICS_PUBLISH)
    GOMETRICS_DELETE_FUNCTIONS(GOMETRICS_PUBLISH)
#undef GOMETRICS_PUBLISH
}

}  // namespace
}  // namespace gometrics::agent

using gometrics::agent::g_target;
using gometrics::agent::acquired;

// The exported operators: one load and a tail jump each.
#define GOMETRICS_DEFINE_NEW(member, op, params, args, spec) \
    [[gnu::visibility("default")]] void* operator op params spec { return acquired(g_target.member) args; }
#define GOMETRICS_DEFINE_DELETE(member, op, params, args) \
    [[gnu::visibility("default")]] void operator op params noexcept { acquired(g_target.member) args; }
GOMETRICS_NEW_FUNCTIONS(GOMETRICS_DEFINE_NEW)
#undef GOMETRICS_DEFINE_NEW
GOMETRICS_DELETE_FUNCTIONS(GOMETRICS_DEFINE_DELETE)
#undef GOMETRICS_DEFINE_DELETE
#undef GOMETRICS_NEW_FUNCTIONS
#undef GOMETRICS_DELETE_FUNCTIONS
