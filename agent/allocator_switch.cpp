// GOMETRICS_ALLOCATOR=jemalloc: the program's malloc family served by
// Debian's libjemalloc.so.2, loaded privately (real.h).
//
// Who owns a pointer. Blocks allocated before the switch (by ld.so, by other
// libraries' constructors, by dlopen of jemalloc itself) are glibc's and must
// go back to glibc. jemalloc 5.3 cannot say whether it owns a pointer: its
// "arenas.lookup" does a dependent radix-tree read that crashes on a foreign
// pointer (measured: SIGSEGV on a static buffer) and takes a global mutex
// (3 us a call). So glibc's blocks are made findable by address instead:
//   - at the first hook call (resolve time), glibc is told to keep a single
//     arena and never to mmap (mallopt M_ARENA_MAX=1, M_MMAP_MAX=0), so every
//     block it ever hands out lies in the brk heap [the break then, __curbrk);
//   - at the switch, glibc's own statistics must prove it (no mmapped chunk,
//     all arena bytes inside that range), or we stay on glibc;
//   - jemalloc is told never to use sbrk (dss "disabled"), so that range is
//     glibc's alone, whatever grows or trims it later.
// A free, realloc or malloc_usable_size then costs one load and two compares
// more. realloc of a glibc block migrates it to jemalloc, so glibc's set of
// live blocks only shrinks.
//
// Why a re-exec: libjemalloc.so.2 has 2.6 KiB of initial-exec TLS, more than
// glibc keeps spare for dlopen (about 1.6 KiB), so dlopen fails with "cannot
// allocate memory in static TLS block". The spare is fixed when the process
// starts (GLIBC_TUNABLES=glibc.rtld.optional_static_tls), so the agent
// re-executes the program once with that tunable added, before main runs.
//
// No RTLD_DEEPBIND: jemalloc's own calls through its PLT are its C++
// operators (not used: RTLD_LOCAL keeps them out of the global scope), two
// rare internal ones, and pthread_mutex_lock, which then reaches our lock
// hook exactly as under a plain LD_PRELOAD of jemalloc. DEEPBIND would
// instead bind libstdc++, when jemalloc's dlopen is what loads it (a C
// program), straight to jemalloc, hiding from the agent every C++ allocation
// of a C++ library the program opens later.
#include <dlfcn.h>
#include <sys/sysinfo.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "agent.h"
#include "buffer.h"
#include "jemalloc_sizes.h"
#include "log.h"
#include "proc.h"
#include "loaded_object.h"
#include "real.h"
#include "slots.h"

extern "C" void* __curbrk;  // glibc's current program break (exported, GLIBC_2.2.5)
extern char** environ;

namespace gometrics::agent {

namespace {

using detail::g_real;

constexpr const char* kLibrary = "libjemalloc.so.2";
constexpr const char* kTunable = "glibc.rtld.optional_static_tls";
// jemalloc needs 2632 bytes; the rest is left for other libraries' dlopen.
constexpr const char* kTunableValue = "glibc.rtld.optional_static_tls=4096";

// The allocator each side of the router calls. Set once at the switch.
struct Allocator {
    decltype(&::malloc) malloc;
    decltype(&::free) free;
    decltype(&::realloc) realloc;
    decltype(&::memalign) memalign;
    decltype(&::malloc_usable_size) usable;
};
constinit Allocator g_glibc{};
constinit Allocator g_je{};
constinit uintptr_t g_brk_lo = 0;  // glibc's brk heap is [g_brk_lo, __curbrk)
constinit MallctlFn g_mallctl = nullptr;
constinit bool g_wanted = false;

[[gnu::always_inline]] inline bool glibc_owns(const void* p) noexcept {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    return a - g_brk_lo < reinterpret_cast<uintptr_t>(__atomic_load_n(&__curbrk, __ATOMIC_RELAXED)) - g_brk_lo;
}

// A block of glibc's does not move jemalloc's count of the thread's freed
// bytes, by which the free hook sizes a block: the hook's window is told
// the size as if it had (jemalloc_sizes.h; outside a window the sum only
// shifts, and only its changes within one are ever used).
void routed_free(void* p) noexcept {
    if (glibc_owns(p)) [[unlikely]] {
        bump(detail::tls_words.freed_attributed, -uint64_t{g_glibc.usable(p)});
        return g_glibc.free(p);
    }
    g_je.free(p);
}

size_t routed_usable_size(void* p) noexcept {
    if (!p) return 0;
    if (glibc_owns(p)) [[unlikely]]
        return g_glibc.usable(p);
    return g_je.usable(p);
}

[[gnu::noinline, gnu::cold]] void* migrate_from_glibc(void* p, size_t n) noexcept {
    if (n == 0) {
        g_glibc.free(p);
        return nullptr;
    }
    void* q = g_je.malloc(n);
    if (!q) return nullptr;  // errno is jemalloc's ENOMEM; p stays valid, as realloc promises
    const size_t old = g_glibc.usable(p);
    std::memcpy(q, p, old < n ? old : n);
    g_glibc.free(p);
    return q;
}

// glibc's semantics throughout (the program was written for them):
// realloc(p, 0) frees p and returns NULL, which the realloc hook counts.
void* routed_realloc(void* p, size_t n) noexcept {
    if (!p) return g_je.malloc(n);
    if (glibc_owns(p)) [[unlikely]]
        return migrate_from_glibc(p, n);
    if (n == 0) {
        g_je.free(p);
        return nullptr;
    }
    void* q = g_je.realloc(p, n);
    if (!q) errno = ENOMEM;  // jemalloc leaves errno alone when a size is past its largest class
    return q;
}

constinit size_t g_page = 4096;
constinit bool g_strict_aligned_alloc = false;  // this glibc's refuses an alignment that is no power of two

// memalign and the forms built on it, as glibc's (the program was written
// for them): jemalloc's refuses an alignment that is not a power of two,
// and leaves errno as it was when it fails. glibc rounds the alignment up
// to one, gives EINVAL past SIZE_MAX / 2 + 1, and ENOMEM for any failure.
void* je_memalign(size_t align, size_t n) noexcept {
    if (align > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return nullptr;
    }
    void* p = g_je.memalign(align <= 8 ? 8 : std::bit_ceil(align), n);
    if (!p) errno = ENOMEM;
    return p;
}

void* je_aligned_alloc(size_t align, size_t n) noexcept {
    if (g_strict_aligned_alloc && !std::has_single_bit(align)) {
        errno = EINVAL;
        return nullptr;
    }
    return je_memalign(align, n);
}

void* je_valloc(size_t n) noexcept { return je_memalign(g_page, n); }

// glibc's posix_memalign sets errno too when it runs out of memory.
constinit decltype(&::posix_memalign) g_je_posix_memalign = nullptr;
int je_posix_memalign(void** out, size_t align, size_t n) noexcept {
    const int rc = g_je_posix_memalign(out, align, n);
    if (rc == ENOMEM) errno = ENOMEM;
    return rc;
}

void* je_pvalloc(size_t n) noexcept {
    size_t rounded;
    if (__builtin_add_overflow(n, g_page - 1, &rounded)) {
        errno = ENOMEM;
        return nullptr;
    }
    rounded &= ~(g_page - 1);
    return je_memalign(g_page, rounded ? rounded : g_page);
}

// Whether glibc's aligned_alloc refuses an alignment that is not a power of
// two, as it does from 2.38 (before, it is memalign): asked of it, once.
bool glibc_aligned_alloc_is_strict() noexcept {
    const int saved_errno = errno;
    errno = 0;
    void* p = g_real.aligned_alloc(24, 1);
    const bool strict = !p && errno == EINVAL;
    if (p) g_real.free(p);
    errno = saved_errno;
    return strict;
}

// Field `field` (1-based, as in proc(5)) of /proc/self/stat, or 0.
uint64_t proc_stat_field(int field) noexcept {
    GOMETRICS_BUFFER static char buf[2048];  // static: start-up may run on a small stack of the program's
    const auto text = sys::read_file(AT_FDCWD, "/proc/self/stat", buf, sizeof buf);
    return text ? sys::stat_field(*text, field).value_or(0) : 0;
}

bool has_tunable() noexcept {
    const char* t = getenv("GLIBC_TUNABLES");
    return t && std::strstr(t, kTunable);
}

// Reads a whole small /proc file into an anonymous mapping (no malloc:
// the hooks are live). Returns its length, or -1 with nothing mapped.
ssize_t slurp(const char* path, char*& out, size_t cap) noexcept {
    void* mem = mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return -1;
    out = static_cast<char*>(mem);
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t len = 0;
    bool ok = fd >= 0;
    for (ssize_t r; ok && len < cap - 1 && (r = read(fd, out + len, cap - 1 - len)) != 0;) {
        if (r < 0 && errno != EINTR) ok = false;
        if (r > 0) len += static_cast<size_t>(r);
    }
    if (fd >= 0) close(fd);
    if (!ok || len == 0 || len >= cap - 1) {
        munmap(mem, cap);
        return -1;
    }
    out[len] = '\0';
    return static_cast<ssize_t>(len);
}

// Executes the program again, same argv and environment plus the static
// TLS tunable. Returns only on failure.
void reexec_with_tunable() noexcept {
    constexpr size_t kCap = 1 << 20;
    char* cmdline;
    const ssize_t len = slurp("/proc/self/cmdline", cmdline, kCap);
    if (len <= 0) return;
    // Failing past here leaves these mappings: a megabyte, once, in a
    // process that then runs on glibc and says why.
    size_t argc = 0;
    for (ssize_t i = 0; i < len; ++i) argc += cmdline[i] == '\0';
    size_t envc = 0;
    while (environ && environ[envc]) ++envc;
    const size_t words = argc + 1 + envc + 2;
    void* mem = mmap(nullptr, words * sizeof(char*) + 4096 + kCap, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return;
    char** argv = static_cast<char**>(mem);
    char** envp = argv + argc + 1;
    char* scratch = reinterpret_cast<char*>(envp + envc + 2);
    size_t a = 0;
    for (ssize_t i = 0; i < len; i += static_cast<ssize_t>(std::strlen(cmdline + i)) + 1) argv[a++] = cmdline + i;
    argv[a] = nullptr;
    size_t e = 0;
    bool merged = false;
    for (size_t i = 0; i < envc; ++i) {
        if (std::strncmp(environ[i], "GLIBC_TUNABLES=", 15) == 0 && !merged) {
            // "GLIBC_TUNABLES=<old>:<ours>"
            const size_t old = std::strlen(environ[i]);
            if (old + std::strlen(kTunableValue) + 2 > kCap) return;
            std::memcpy(scratch, environ[i], old);
            scratch[old] = ':';
            std::strcpy(scratch + old + 1, kTunableValue);
            envp[e++] = scratch;
            merged = true;
        } else {
            envp[e++] = environ[i];
        }
    }
    if (!merged) {
        std::strcpy(scratch, "GLIBC_TUNABLES=");
        std::strcat(scratch, kTunableValue);
        envp[e++] = scratch;
    }
    envp[e] = nullptr;
    execve("/proc/self/exe", argv, envp);
}

template <class Fn>
bool find(void* handle, Fn& out, const char* name) noexcept {
    out = reinterpret_cast<Fn>(dlsym(handle, name));
    return out != nullptr;
}

// jemalloc must never take memory with sbrk: the brk heap is glibc's.
bool disable_dss() noexcept {
    const char* disabled = "disabled";
    unsigned narenas = 0;
    size_t sz = sizeof narenas;
    if (g_mallctl("arenas.narenas", &narenas, &sz, nullptr, 0) != 0) return false;
    // 4096 is MALLCTL_ARENAS_ALL: the default for arenas created later.
    if (g_mallctl("arena.4096.dss", nullptr, nullptr, &disabled, sizeof disabled) != 0) return false;
    for (unsigned i = 0; i < narenas; ++i) {
        char name[32] = "arena.";
        char num[24];
        const std::string_view digits = log::dec(i, num);
        std::strncat(name, digits.data(), digits.size());
        std::strcat(name, ".dss");
        const int rc = g_mallctl(name, nullptr, nullptr, &disabled, sizeof disabled);
        if (rc != 0 && rc != EFAULT) return false;  // EFAULT: arena i not created yet
    }
    return true;
}

constinit std::atomic<bool> g_said{false};

void refuse(std::initializer_list<std::string_view> why) noexcept { log::once(g_said, why); }

}  // namespace

namespace detail {

// Called by resolve_real() before the first real allocation: read the wish,
// and if it is jemalloc, keep every glibc block in the brk heap from now on.
void prepare_allocator_switch(void* real_malloc) noexcept {
    if (!config().jemalloc) return;
    sys::LoadedObject object;
    if (!sys::object_of(real_malloc, object) || !std::strstr(object.path, "/libc.so.6")) {
        refuse({"GOMETRICS_ALLOCATOR=jemalloc: the program's malloc is not glibc's (", object.path ? object.path : "?",
                "): left as it is"});
        return;
    }
    g_wanted = mallopt(M_ARENA_MAX, 1) == 1 && mallopt(M_MMAP_MAX, 0) == 1;
    // Where glibc's heap will start: the break before its first block. (Not
    // start_brk from /proc/self/stat: under valgrind that is valgrind's own,
    // not the program's emulated break.)
    g_brk_lo = reinterpret_cast<uintptr_t>(sbrk(0));
    if (!g_wanted) refuse({"GOMETRICS_ALLOCATOR=jemalloc: mallopt failed: staying on glibc"});
}

}  // namespace detail

void switch_allocator_if_asked() noexcept {
    if (!g_wanted) return;
    g_wanted = false;
    // Whatever makes us stay on glibc, the program must not keep the
    // single-arena, no-mmap tuning that prepared the switch.
    struct RestoreUnlessSwitched {
        bool switched = false;
        ~RestoreUnlessSwitched() {
            if (switched) return;
            // glibc's own defaults: 8 arenas per core (NARENAS_FROM_NCORES;
            // mallopt refuses 0), and DEFAULT_MMAP_MAX.
            mallopt(M_ARENA_MAX, 8 * get_nprocs());
            mallopt(M_MMAP_MAX, 65536);
        }
    } restore;
    if (proc_stat_field(20) != 1) {  // num_threads: a thread could be inside glibc's malloc right now
        refuse({"GOMETRICS_ALLOCATOR=jemalloc: threads already run before the agent's constructor: staying on glibc"});
        return;
    }
    void* h = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!h) {
        const char* err = dlerror();
        if (err && std::strstr(err, "static TLS") && !has_tunable()) reexec_with_tunable();
        refuse({"GOMETRICS_ALLOCATOR=jemalloc: cannot load ", kLibrary, " (", err ? err : "?", "): staying on glibc"});
        return;
    }
    Allocator je{};
    decltype(&::calloc) je_calloc;
    if (!find(h, je.malloc, "malloc") || !find(h, je.free, "free") || !find(h, je.realloc, "realloc") ||
        !find(h, je.memalign, "memalign") || !find(h, je.usable, "malloc_usable_size") ||
        !find(h, je_calloc, "calloc") || !find(h, g_je_posix_memalign, "posix_memalign") ||
        !find(h, g_mallctl, "mallctl")) {
        refuse({"GOMETRICS_ALLOCATOR=jemalloc: ", kLibrary, " lacks a malloc function: staying on glibc"});
        g_mallctl = nullptr;
        return;
    }
    if (!disable_dss()) {
        refuse({"GOMETRICS_ALLOCATOR=jemalloc: cannot turn off jemalloc's sbrk use: staying on glibc"});
        g_mallctl = nullptr;
        return;
    }
    // Every glibc block must lie in [g_brk_lo, __curbrk): its statistics
    // must show no mmapped chunk and no arena byte outside that range.
    const uintptr_t lo = g_brk_lo;
    const uintptr_t hi = reinterpret_cast<uintptr_t>(__curbrk);
    const struct mallinfo2 mi = mallinfo2();
    if (lo == 0 || hi < lo || mi.hblks != 0 || mi.arena > hi - lo) {
        refuse({"GOMETRICS_ALLOCATOR=jemalloc: glibc holds memory outside its brk heap: staying on glibc"});
        g_mallctl = nullptr;
        return;
    }
    g_page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    g_strict_aligned_alloc = glibc_aligned_alloc_is_strict();
    g_glibc = {g_real.malloc, g_real.free, g_real.realloc, g_real.memalign, g_real.malloc_usable_size};
    g_je = je;
    restore.switched = true;
    // The hooks read g_real on every call; we are the only thread, so these
    // plain stores are seen by every thread created from here on.
    detail::g_glibc_chunks = false;  // usable_size() must ask the router now
    detail::g_switched = true;
    detail::demote_slot();           // and this thread counts out of line from now on
    g_real.malloc_usable_size = routed_usable_size;
    g_real.free = routed_free;
    g_real.realloc = routed_realloc;
    g_real.pvalloc = je_pvalloc;
    g_real.memalign = je_memalign;
    g_real.valloc = je_valloc;
    g_real.aligned_alloc = je_aligned_alloc;
    g_real.posix_memalign = je_posix_memalign;
    g_real.calloc = je_calloc;
    g_real.malloc = je.malloc;
    // Sizes without asking jemalloc (jemalloc_sizes.h), if it has what that needs.
    detail::NallocxFn nallocx;
    detail::NameToMibFn name_to_mib;
    detail::ByMibFn by_mib;
    if (find(h, nallocx, "nallocx") && find(h, name_to_mib, "mallctlnametomib") && find(h, by_mib, "mallctlbymib"))
        detail::use_switched_jemalloc(nallocx, name_to_mib, by_mib);
}

MallctlFn switched_mallctl() noexcept { return g_mallctl; }

bool switched_glibc_owns(const void* p) noexcept { return g_mallctl && glibc_owns(p); }

}  // namespace gometrics::agent
