// The attached agent; see attach.h.
//
// The GOT entries point at the wrappers below, not at the hooks: the
// wrappers keep what only an attached agent needs off the preloaded hot
// path.
// - Blocks allocated before the attach are freed after it. A map with one
//   byte (or bit) per granule of address space says which blocks the hooks
//   counted: free counts a block only if it was marked, and passes any other
//   straight to libc's free; realloc of such a block counts only the
//   new one. So live bytes and objects are those of the blocks allocated
//   since the attach, exactly, and never negative. The map is two-level
//   (1 GiB regions, 32 MiB leaves on glibc, reserved and touched only where
//   the heap is), lock-free and async-signal-safe.
// - The heap from before the attach is the allocator's own in-use figure,
//   read just before the hooks take over, less the blocks from before that
//   are freed since, each in the measure that figure has (glibc: its whole
//   chunk; jemalloc: its usable size). It is part of live bytes and the
//   memory classes (/gc/heap/live-before-attach:bytes on its own), so they
//   track the allocator's own figure; objects and the cumulative counts are
//   those of the blocks since the attach.
// - A second attach after a detach counts from zero in a new segment: each
//   thread's first call after it sees the epoch change and leaves its old
//   slot (in the old, unlinked segment) for a new one.
// - Objects loaded later: dlopen is redirected to a trampoline that flags a
//   rescan and jumps on (so dlopen still sees the program as its caller);
//   the next allocation by any thread redirects the new objects' entries.
//   pthread_create also rescans when the loader's count of loaded objects
//   moved (libc's own dlopens: NSS, iconv).
// operator new and delete are not redirected: libstdc++'s reach malloc and
// free through its own GOT, which is.
#include "attach.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <optional>

#include "agent.h"
#include "buffer.h"
#include "catalog.h"
#include "clocks.h"
#include "got.h"
#include "heap_hooks.h"
#include "layout.h"
#include "log.h"
#include "proc.h"
#include "profile.h"
#include "publisher.h"
#include "real.h"
#include "slots.h"
#include "thread_state.h"

// What the GOT entries are redirected for (real.h's lists, variadic X).
#define GOMETRICS_ATTACH_MALLOC(X)    \
    GOMETRICS_MALLOC_FUNCTIONS(X)     \
    X(reallocarray)
#define GOMETRICS_ATTACH_HOOKS(X)     \
    GOMETRICS_ATTACH_MALLOC(X)        \
    X(pthread_create)                 \
    GOMETRICS_LOCK_FUNCTIONS(X)

// Read by the dlopen trampoline (assembly, below).
extern "C" {
[[gnu::visibility("hidden"), gnu::used]] constinit uint32_t gometrics_attach_generation = 1;
[[gnu::visibility("hidden"), gnu::used]] constinit uint8_t gometrics_attach_rescan = 0;
[[gnu::visibility("hidden"), gnu::used]] constinit void* gometrics_attach_real_dlopen = nullptr;
[[gnu::visibility("hidden")]] void* gometrics_attach_dlopen(const char*, int);
}

extern "C" {
[[gnu::visibility("hidden")]] bool gometrics_attach_by_path(const char* file) noexcept {
    return file && __builtin_strchr(file, '/');
}
[[gnu::visibility("hidden")]] void* gometrics_attach_dlopen_then_scan(const char* file, int mode) noexcept;
}

// dlopen finds the caller's RUNPATH from its return address: a bare name
// is passed on by a jump, so the caller stays the program's code, with a
// rescan flagged for the next allocation of any thread. A path (what
// plugins and Python's extension modules give) needs no search: it is
// called from here, and the new objects are redirected before it returns.
asm(R"(
    .text
    .p2align 4
    .globl gometrics_attach_dlopen
    .hidden gometrics_attach_dlopen
    .type gometrics_attach_dlopen, @function
gometrics_attach_dlopen:
    push %rdi
    push %rsi
    sub $8, %rsp
    call gometrics_attach_by_path
    add $8, %rsp
    pop %rsi
    pop %rdi
    test %al, %al
    jnz gometrics_attach_dlopen_then_scan
    movb $1, gometrics_attach_rescan(%rip)
    lock addl $1, gometrics_attach_generation(%rip)
    jmp *gometrics_attach_real_dlopen(%rip)
    .size gometrics_attach_dlopen, .-gometrics_attach_dlopen
)");

namespace gometrics::agent::attach {
namespace {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
struct Hooks {
#define GOMETRICS_HOOK_MEMBER(name, ...) decltype(&::name) name;
    GOMETRICS_ATTACH_HOOKS(GOMETRICS_HOOK_MEMBER)
#undef GOMETRICS_HOOK_MEMBER
};
#pragma GCC diagnostic pop

constinit Hooks g_hook{};     // the agent's own exported hooks
constinit Hooks g_libc{};     // what the program's calls reached before (restore's fallback)
constinit bool g_late = false;
constinit bool g_started = false;  // the constructor went through (no refusal at load)
constinit bool g_malloc_family = false;  // the program's malloc is libc's: take it over
constinit std::atomic<bool> g_active{false};
constinit std::atomic<bool> g_detached{false};
constinit std::atomic<bool> g_scanning{false};
constinit std::atomic<uint32_t> g_epoch{1};
constinit uintptr_t g_self = 0;
constinit unsigned long long g_adds = 0;  // the loader's count of objects added, at the last scan

__thread uint32_t tls_generation [[gnu::tls_model("initial-exec")]] = 0;
__thread uint32_t tls_epoch [[gnu::tls_model("initial-exec")]] = 0;

// ---- The map of counted blocks.
// glibc's chunks are at least 32 bytes, so a 32-byte granule holds at most
// one block's start, and a byte per granule costs 1/32 of the heap's span.
// A byte, not a bit: marking and forgetting are plain stores, where bits
// would need a locked read-modify-write per call (two threads' blocks share
// a word), which costs more than the rest of the wrapper. Another
// allocator's blocks may be 8 bytes apart: bytes would cost 1/8 of its
// heap, so there it is a bit per 8 bytes (1/64), set and reset locked.
// The wrappers are built for each layout (the GOT gets the one prepare
// chose), so that none asks which at every call.
enum class Map { kBytes, kBits };
constexpr unsigned kRegionShift = 30, kAddressBits = 47;
template <Map M>
constexpr unsigned kGranuleShift = M == Map::kBits ? 3 : 5;
template <Map M>
constexpr size_t kLeafBytes = (size_t{1} << (kRegionShift - kGranuleShift<M>)) >> (M == Map::kBits ? 3 : 0);
constinit Map g_map = Map::kBytes;
constexpr size_t kRegions = size_t{1} << (kAddressBits - kRegionShift);
constinit std::atomic<uint8_t*>* g_dir = nullptr;
GOMETRICS_BUFFER constinit std::atomic<uint64_t> g_failed[kRegions / 64]{};  // regions whose leaf could not be mapped

size_t leaf_bytes() noexcept { return g_map == Map::kBits ? kLeafBytes<Map::kBits> : kLeafBytes<Map::kBytes>; }

// A leaf is mapped by the first block counted in its gigabyte: rare, so
// kept out of line, away from the wrappers' few instructions.
[[gnu::noinline, gnu::cold]] uint8_t* create_leaf(uintptr_t r) noexcept {
    const uint64_t failed_bit = uint64_t{1} << (r & 63);
    if (g_failed[r >> 6].load(std::memory_order_relaxed) & failed_bit) return nullptr;  // said, not retried
    const int saved_errno = errno;  // the wrapper's errno is the real call's
    void* m = mmap(nullptr, leaf_bytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        // The hooks count such a block, but its free will be taken for that
        // of a block from before the attach.
        g_failed[r >> 6].fetch_or(failed_bit, std::memory_order_relaxed);
        static constinit std::atomic<bool> said{false};
        log::once(said, {"attach: no memory to map which blocks were counted: blocks allocated from now on may "
                         "stay in the counts after they are freed"});
        errno = saved_errno;
        return nullptr;
    }
    errno = saved_errno;
    uint8_t* expected = nullptr;
    if (!g_dir[r].compare_exchange_strong(expected, static_cast<uint8_t*>(m), std::memory_order_acq_rel)) {
        munmap(m, leaf_bytes());
        return expected;
    }
    return static_cast<uint8_t*>(m);
}

[[gnu::always_inline]] inline uint8_t* leaf(uintptr_t a) noexcept {
    const uintptr_t r = a >> kRegionShift;
    if (r >= kRegions) [[unlikely]]
        return nullptr;
    return g_dir[r].load(std::memory_order_acquire);
}

template <Map M>
[[gnu::always_inline]] inline size_t granule(uintptr_t a) noexcept {
    return (a & ((uintptr_t{1} << kRegionShift) - 1)) >> kGranuleShift<M>;
}

template <Map M>
[[gnu::always_inline]] inline void set(uint8_t* l, uintptr_t a) noexcept {
    const size_t g = granule<M>(a);
    if constexpr (M == Map::kBits)  // a register bit offset addresses the whole leaf
        asm volatile("lock btsq %1, %0" : "+m"(*l) : "r"(g) : "cc", "memory");
    else
        __atomic_store_n(&l[g], uint8_t{1}, __ATOMIC_RELAXED);
}

template <Map M>
[[gnu::noinline, gnu::cold]] void* mark_in_new_leaf(void* p) noexcept {
    const auto a = reinterpret_cast<uintptr_t>(p);
    if (uint8_t* l = create_leaf(a >> kRegionShift)) set<M>(l, a);
    return p;
}

// Marks p as counted; returns it. Nothing is called on the way but out of
// line, so that a wrapper keeps p in a scratch register.
template <Map M>
[[gnu::always_inline]] inline void* mark(void* p) noexcept {
    const auto a = reinterpret_cast<uintptr_t>(p);
    const uintptr_t r = a >> kRegionShift;
    if (r >= kRegions) [[unlikely]]
        return p;
    uint8_t* l = g_dir[r].load(std::memory_order_acquire);
    if (!l) [[unlikely]]
        return mark_in_new_leaf<M>(p);
    set<M>(l, a);
    return p;
}

// Whether p was counted; forgets it. Only p's allocation and its free touch
// its byte, and the program orders those: no read-modify-write is needed.
template <Map M>
[[gnu::always_inline]] inline bool unmark(void* p) noexcept {
    const auto a = reinterpret_cast<uintptr_t>(p);
    uint8_t* l = leaf(a);
    if (!l) [[unlikely]]
        return false;
    const size_t g = granule<M>(a);
    if constexpr (M == Map::kBits) {
        bool was;
        asm volatile("lock btrq %2, %1" : "=@ccc"(was), "+m"(*l) : "r"(g) : "memory");
        return was;
    }
    if (!__atomic_load_n(&l[g], __ATOMIC_RELAXED)) return false;
    __atomic_store_n(&l[g], uint8_t{0}, __ATOMIC_RELAXED);
    return true;
}

constexpr int kDontNeedLocked = 24;  // MADV_DONTNEED_LOCKED, newer than some headers

// Every leaf back to zero pages. Locked memory (mlockall) refuses
// MADV_DONTNEED: Linux 5.18 has a variant for locked pages, and before it
// the leaf is unlocked first. Failing all, the leaf is left behind, still
// mapped for a thread that may hold it, and marks in its gigabyte start on a
// new one; returns the error then, 0 otherwise.
int clear_map() noexcept {
    if (!g_dir) return 0;  // prepare could not map the directory: nothing was marked
    int err = 0;
    for (size_t r = 0; r < kRegions; ++r) {
        uint8_t* l = g_dir[r].load(std::memory_order_acquire);
        if (!l || madvise(l, leaf_bytes(), MADV_DONTNEED) == 0 || madvise(l, leaf_bytes(), kDontNeedLocked) == 0 ||
            (munlock(l, leaf_bytes()) == 0 && madvise(l, leaf_bytes(), MADV_DONTNEED) == 0))
            continue;
        err = errno;
        g_dir[r].store(nullptr, std::memory_order_release);
    }
    for (auto& word : g_failed) word.store(0, std::memory_order_relaxed);  // a new attach may try again
    return err;
}

// The map's pages given back at detach (on glibc a byte per 32 bytes of the
// heap's span): a thread still in a wrapper that marks after this faults in
// a zero page, which the next attach clears with the rest. Best effort, and
// never munlock: a failure only leaves the pages until that attach.
void release_map() noexcept {
    if (!g_dir) return;
    for (size_t r = 0; r < kRegions; ++r)
        if (uint8_t* l = g_dir[r].load(std::memory_order_acquire))
            if (madvise(l, leaf_bytes(), MADV_DONTNEED) != 0) (void)madvise(l, leaf_bytes(), kDontNeedLocked);
}

// ---- Redirection.
got::Redirect g_table[32];
size_t g_table_size = 0;

void scan_locked() noexcept {
    __atomic_store_n(&gometrics_attach_rescan, uint8_t{0}, __ATOMIC_RELAXED);
    if (!got::redirect(g_table, g_table_size, g_self)) {
        // An object still being relocated: the next call looks again.
        __atomic_store_n(&gometrics_attach_rescan, uint8_t{1}, __ATOMIC_RELAXED);
        __atomic_fetch_add(&gometrics_attach_generation, 1, __ATOMIC_RELEASE);
    }
}

bool lock_scan(bool wait) noexcept { return sys::take_flag(g_scanning, wait ? -1 : 0); }
void unlock_scan() noexcept { g_scanning.store(false, std::memory_order_release); }

void rescan() noexcept {
    if (!lock_scan(false)) return;  // another thread is at it
    if (g_active.load(std::memory_order_acquire)) scan_locked();
    unlock_scan();
}

}  // namespace

void rescan_from_dlopen() noexcept {
    // Waits for a scan under way: the objects this dlopen brought must be
    // redirected before it returns.
    if (!lock_scan(true)) return;
    if (g_active.load(std::memory_order_acquire)) scan_locked();
    unlock_scan();
}

namespace {

int count_adds(dl_phdr_info* info, size_t, void* out) {
    *static_cast<unsigned long long*>(out) = info->dlpi_adds;
    return 1;
}

}  // namespace
}  // namespace gometrics::agent::attach

extern "C" void* gometrics_attach_dlopen_then_scan(const char* file, int mode) noexcept {
    using Dlopen = void* (*)(const char*, int);
    void* h = reinterpret_cast<Dlopen>(gometrics_attach_real_dlopen)(file, mode);
    if (h) {
        const int saved_errno = errno;
        __atomic_store_n(&gometrics_attach_rescan, uint8_t{1}, __ATOMIC_RELEASE);
        gometrics::agent::attach::rescan_from_dlopen();
        errno = saved_errno;
    }
    return h;
}

namespace gometrics::agent::attach {
namespace {

// The pid of a process whose attach clears the map and zeroes the private
// slots, between its epoch's move and the new counts' start; 0 otherwise. A
// pid: a child forked meanwhile must not wait for a clearing it will never see end.
constinit std::atomic<pid_t> g_clearing{0};

// ---- The calling thread catches up with an attach, a detach or a dlopen.
[[gnu::noinline, gnu::cold]] void catch_up_slow(bool may_scan) noexcept {
    const int saved_errno = errno;
    const uint32_t gen = __atomic_load_n(&gometrics_attach_generation, __ATOMIC_ACQUIRE);
    const uint32_t epoch = g_epoch.load(std::memory_order_acquire);
    // Under a Guard (the agent's own work, libc's allocations inside it
    // included) nothing is caught up: the Guard gives the old slot back as
    // it ends, so the thread's next call of its own must see the change.
    if (detail::tls_slot == detail::marker(detail::kAgentThread)) return;
    if (tls_epoch != epoch) {
        // Not on the new epoch before the clearing is done: such a thread
        // could take the mark of an earlier attach's block, or count where
        // the zeroing then wipes it. The attach holds no lock of the program's.
        for (pid_t c; (c = g_clearing.load(std::memory_order_acquire)) != 0 && c == getpid();) sys::pause_ns(50000);
        // A slot of an earlier attach lives in that attach's segment: take
        // a new one at the next counted call.
        const auto m = reinterpret_cast<uintptr_t>(detail::tls_slot);
        if (m > detail::kMaxMarker || m == detail::kSlowSlot) {
            detail::tls_slot = detail::marker(detail::kNoSlot);
            detail::tls_slow_slot = nullptr;
        }
        tls_epoch = epoch;
    }
    if (may_scan) {
        tls_generation = gen;
        if (__atomic_load_n(&gometrics_attach_rescan, __ATOMIC_ACQUIRE)) rescan();
    }
    errno = saved_errno;
}

[[gnu::always_inline]] inline bool behind() noexcept {
    return tls_generation != __atomic_load_n(&gometrics_attach_generation, __ATOMIC_RELAXED);
}
[[gnu::always_inline]] inline void catch_up() noexcept {
    if (behind()) [[unlikely]]
        catch_up_slow(true);
}
// Lock wrappers only follow the epoch: a rescan takes the loader's lock,
// which they must not wait for while the program may hold its own.
[[gnu::always_inline]] inline void catch_up_epoch() noexcept {
    if (tls_epoch != g_epoch.load(std::memory_order_relaxed)) [[unlikely]]
        catch_up_slow(false);
}

// The hooks leave the agent's own allocations uncounted: so must the map.
[[gnu::always_inline]] inline bool agent_thread() noexcept {
    return detail::tls_slot == detail::marker(detail::kAgentThread);
}

// The segment serial (slots.h) of this attach's segment; 0 until it has one.
constinit std::atomic<uint32_t> g_attach_segment{0};

// A detach and a new attach can both land while a thread is inside the real
// call: its block may then be counted on a slot of the earlier attach's
// segment, and only a block counted in this attach's segment may stay
// marked (else its free comes off counts that never had it). The epoch moves
// before the map is cleared (gometrics_attach), so a mark the clearing missed
// sees it here; then the slot decides. Out of line: a thread still behind.
template <Map M>
[[gnu::noinline, gnu::cold]] void* settle_mark(void* p) noexcept {
    std::atomic_thread_fence(std::memory_order_acquire);  // the new epoch seen: its attach's segment too
    const auto m = reinterpret_cast<uintptr_t>(detail::tls_slot);
    const bool on_claimed_slot = m > detail::kMaxMarker || m == detail::kSlowSlot;  // not the orphans
    const uint32_t segment = detail::tls_words.slot_segment;
    const bool here = on_claimed_slot && segment != 0 && segment == g_attach_segment.load(std::memory_order_acquire);
    if (!here) (void)unmark<M>(p);
    return p;
}
// Marks p; whether an attach has moved the epoch since this thread's call
// began (the mark's store comes before the epoch's load). p is taken back
// from the mark, which returns it: then no path keeps it in a stack slot,
// and a wrapper needs no frame beyond its saved register.
template <Map M>
[[gnu::always_inline]] inline bool marked_behind_epoch(void*& p) noexcept {
    p = mark<M>(p);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    return tls_epoch != g_epoch.load(std::memory_order_relaxed);
}

template <Map M>
[[gnu::always_inline]] inline void* marked_in_this_attach(void* p) noexcept {
    if (marked_behind_epoch<M>(p)) [[unlikely]]
        return settle_mark<M>(p);
    return p;
}

// A counted block whose realloc failed stays counted, unless an attach came
// during the call: then it is one from before that attach.
template <Map M>
[[gnu::noinline, gnu::cold]] void marked_again(void* p) noexcept {
    if (marked_behind_epoch<M>(p)) (void)unmark<M>(p);
}

template <Map M>
[[gnu::always_inline]] inline void* counted(void* p) noexcept {
    if (p && !agent_thread()) [[likely]]
        return marked_in_this_attach<M>(p);
    return p;
}

// What the hooks' inline counting (heap_hooks.h) does next in a wrapper: a
// block counted on the inline path was a program thread's, so it is marked
// without asking whose thread it is.
template <Map M>
[[gnu::noinline]] void* counted_out_of_line(void* p) noexcept {
    return counted<M>(p);
}
template <Map M>
struct Marked {
    static void* fast(void* p) noexcept { return marked_in_this_attach<M>(p); }
    // Out of line, as the paths that lead here are: the wrapper then keeps
    // nothing across them, and needs no frame.
    static void* slow(void* p) noexcept { return counted_out_of_line<M>(p); }
};

// What the attach's in-use figure counted of p, a live block from before it.
uint64_t before_attach_bytes(void* p) noexcept {
    if (detail::g_glibc_chunks) return glibc::chunk_head(p) & ~size_t{7};
    return detail::asked_usable_size(p);
}

// A block from before the attach leaves the heap: taken off the figure read
// then, on the calling thread's slot. Not the agent's own blocks (it counts
// none), nor when no figure was read.
void count_before_attach(uint64_t bytes) noexcept {
    if (agent_thread() || detail::g_attach_heap_baseline.load(std::memory_order_relaxed) == 0) return;
    ThreadSlot* s = current_slot();
    if (!s) return;
    if (is_orphans(s))
        bump_shared(s->before_attach_freed, bytes);
    else
        bump(s->before_attach_freed, bytes);
}

// ---- The wrappers the GOT entries point at.
// malloc, calloc and free catch up out of line, then start again. Their
// common case is the hook's own, folded in (heap_hooks.h), with the map's
// mark or unmark: one call layer and one test fewer than calling the hook.
template <Map M>
[[gnu::noinline, gnu::cold]] void* w_malloc_behind(size_t n) noexcept {
    catch_up_slow(true);
    return counted<M>(g_hook.malloc(n));
}
template <Map M>
[[gnu::noinline]] void* w_malloc_without_slot(size_t n) noexcept {
    return hooks::counted<Marked<M>>(real_fn<&RealFunctions::malloc>()(n), n);
}
// The slot first, as malloc's hook does: with one, only it lives across
// the real call (hooks_malloc.cpp).
template <Map M>
void* w_malloc(size_t n) noexcept {
    if (behind()) [[unlikely]]
        return w_malloc_behind<M>(n);
    ThreadSlot* s = detail::tls_slot;
    if (!hooks::has_slot(s)) [[unlikely]]
        return w_malloc_without_slot<M>(n);
    void* p = resolved_fn<&RealFunctions::malloc>()(n);
    if (!p) [[unlikely]]
        return p;
    return hooks::counted_on_slot<Marked<M>>(s, p);
}

template <Map M>
[[gnu::noinline, gnu::cold]] void* w_calloc_behind(size_t n, size_t size) noexcept {
    catch_up_slow(true);
    return counted<M>(g_hook.calloc(n, size));
}
template <Map M>
void* w_calloc(size_t n, size_t size) noexcept {
    if (behind()) [[unlikely]]
        return w_calloc_behind<M>(n, size);
    return hooks::counted<Marked<M>>(real_fn<&RealFunctions::calloc>()(n, size), n * size);
}

// Allocated before the attach (or by the agent): not in the counts, only in
// the figure read at the attach. A heap sample of an earlier attach is
// forgotten all the same.
[[gnu::noinline]] void free_from_before(void* p) noexcept {
    if (profile::maybe_sampled(p)) [[unlikely]]
        (void)profile::forget(p);
    if (!is_bootstrap(p)) count_before_attach(before_attach_bytes(p));
    real().free(p);
}

template <Map M>
[[gnu::always_inline]] inline void free_caught_up(void* p) noexcept {
    if (!p) return;
    if (unmark<M>(p)) return hooks::free_counted(p);
    free_from_before(p);
}
template <Map M>
[[gnu::noinline, gnu::cold]] void w_free_behind(void* p) noexcept {
    catch_up_slow(true);
    free_caught_up<M>(p);
}
template <Map M>
void w_free(void* p) noexcept {
    if (behind()) [[unlikely]]
        return w_free_behind<M>(p);
    free_caught_up<M>(p);
}

template <Map M>
void* w_realloc(void* p, size_t n) noexcept {
    catch_up();
    if (!p) return counted<M>(g_hook.realloc(p, n));
    if (unmark<M>(p)) {
        void* q = g_hook.realloc(p, n);
        if (q) return counted<M>(q);
        if (n) marked_again<M>(p);  // failed: p lives on (realloc(p, 0) freed it)
        return q;
    }
    // A block from before the attach: its old size was never counted, the
    // new block is.
    const uint64_t old = is_bootstrap(p) ? 0 : before_attach_bytes(p);
    void* q = real().realloc(p, n);
    if (q || n == 0) count_before_attach(old);  // glibc: realloc(p, 0) frees p
    if (q && !agent_thread()) {
        q = marked_in_this_attach<M>(count_allocation(q));
    }
    return q;
}

template <Map M>
void* w_reallocarray(void* p, size_t n, size_t size) noexcept {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return nullptr;
    }
    return w_realloc<M>(p, total);
}

template <Map M>
int w_posix_memalign(void** out, size_t align, size_t n) noexcept {
    catch_up();
    const int rc = g_hook.posix_memalign(out, align, n);
    if (rc == 0) counted<M>(*out);
    return rc;
}

template <Map M>
void* w_aligned_alloc(size_t align, size_t n) noexcept {
    catch_up();
    return counted<M>(g_hook.aligned_alloc(align, n));
}

template <Map M>
void* w_memalign(size_t align, size_t n) noexcept {
    catch_up();
    return counted<M>(g_hook.memalign(align, n));
}

template <Map M>
void* w_valloc(size_t n) noexcept {
    catch_up();
    return counted<M>(g_hook.valloc(n));
}

template <Map M>
void* w_pvalloc(size_t n) noexcept {
    catch_up();
    return counted<M>(g_hook.pvalloc(n));
}

template <Map>  // one per layout, as its family
size_t w_malloc_usable_size(void* p) noexcept { return g_hook.malloc_usable_size(p); }

// Objects libc loaded itself (NSS, iconv: not through the dlopen the
// trampoline stands in for) show only in the loader's count.
void rescan_if_loaded() noexcept {
    unsigned long long adds = 0;
    dl_iterate_phdr(count_adds, &adds);
    if (adds != __atomic_load_n(&g_adds, __ATOMIC_RELAXED)) {
        __atomic_store_n(&g_adds, adds, __ATOMIC_RELAXED);
        __atomic_store_n(&gometrics_attach_rescan, uint8_t{1}, __ATOMIC_RELEASE);
        rescan();
    }
}

int w_pthread_create(pthread_t* t, const pthread_attr_t* attr, void* (*routine)(void*), void* arg) noexcept {
    catch_up();
    rescan_if_loaded();
    return g_hook.pthread_create(t, attr, routine, arg);
}

#define GOMETRICS_LOCK_WRAPPER(name, params, args) \
    int w_##name params noexcept {                  \
        catch_up_epoch();                           \
        return g_hook.name args;                    \
    }
GOMETRICS_LOCK_FUNCTIONS(GOMETRICS_LOCK_WRAPPER)
#undef GOMETRICS_LOCK_WRAPPER

int find_libc(dl_phdr_info* info, size_t, void* out) {
    auto* r = static_cast<int*>(out);  // r[0]: index now, r[1]: libc's, r[2]: ours
    if (info->dlpi_name && std::strstr(info->dlpi_name, "/libc.so.6") && r[1] < 0) r[1] = r[0];
    if (info->dlpi_addr == g_self) r[2] = r[0];
    ++r[0];
    return 0;
}

uintptr_t self_base() noexcept {
    Dl_info info{};
    if (!dladdr(reinterpret_cast<void*>(&self_base), &info)) return 0;
    return reinterpret_cast<uintptr_t>(info.dli_fbase);
}

// Whether `name`, as the program binds it, is libc's: its definition in
// libc, or the executable's canonical PLT entry (an undefined symbol with an
// address, in a non-PIE program that takes the function's address).
bool bound_to_libc(const char* name) noexcept {
    void* def = dlsym(RTLD_DEFAULT, name);
    Dl_info info{};
    void* entry = nullptr;
    if (!def || !dladdr1(def, &info, &entry, RTLD_DL_SYMENT)) return false;
    const auto* sym = static_cast<const ElfW(Sym)*>(entry);
    if (info.dli_fname && std::strstr(info.dli_fname, "/libc.so.6")) return true;
    return sym && sym->st_shndx == SHN_UNDEF;
}

// The program's malloc family comes from a shared library of its own
// (redis with libjemalloc, a program linked with tcmalloc): the hooks
// forward to it, as they do when such a library is preloaded after the
// agent, and count with its malloc_usable_size. An allocator linked into
// the executable itself is left alone (as under LD_PRELOAD).
bool adopt_library_allocator() noexcept {
    Dl_info info{};
    void* def = dlsym(RTLD_DEFAULT, "malloc");
    if (!def || !dladdr(def, &info) || !info.dli_fname || !std::strstr(info.dli_fname, ".so")) return false;
    if (info.dli_fbase == reinterpret_cast<void*>(g_self)) return false;
    Dl_info other{};
    for (void* f : {reinterpret_cast<void*>(g_libc.free), reinterpret_cast<void*>(g_libc.realloc),
                    reinterpret_cast<void*>(g_libc.calloc), reinterpret_cast<void*>(g_libc.malloc_usable_size)})
        if (!f || !dladdr(f, &other) || other.dli_fbase != info.dli_fbase) return false;  // one allocator, whole
    RealFunctions& r = detail::g_real;
#define GOMETRICS_ADOPT(name, ...) \
    if (g_libc.name) __atomic_store_n(&r.name, g_libc.name, __ATOMIC_RELEASE);
    GOMETRICS_MALLOC_FUNCTIONS(GOMETRICS_ADOPT)
#undef GOMETRICS_ADOPT
    detail::g_glibc_chunks = false;  // its blocks have no glibc header: sizes are asked
    g_map = Map::kBits;              // and may be 8 bytes apart
    return true;
}

void build_table() noexcept {
    g_table_size = 0;
    auto add = [](const char* name, void* to, void* fallback, bool in_libc = false) {
        if (to && fallback) g_table[g_table_size++] = {name, to, fallback, in_libc};
    };
    auto v = [](auto f) { return reinterpret_cast<void*>(f); };
#define GOMETRICS_ADD(name, ...) add(#name, v(w_##name), v(g_libc.name));
#define GOMETRICS_ADD_IN_LIBC(name, ...) \
    add(#name, g_map == Map::kBits ? v(w_##name<Map::kBits>) : v(w_##name<Map::kBytes>), v(g_libc.name), true);
    if (g_malloc_family) {
        GOMETRICS_ATTACH_MALLOC(GOMETRICS_ADD_IN_LIBC)
    }
#undef GOMETRICS_ADD_IN_LIBC
    GOMETRICS_ADD(pthread_create)
    GOMETRICS_LOCK_FUNCTIONS(GOMETRICS_ADD)
#undef GOMETRICS_ADD
    add("dlopen", v(gometrics_attach_dlopen), gometrics_attach_real_dlopen);
}

// Counts of private slots (beyond the segment's, the orphans, a forked
// child's inheritance) start again from zero at a second attach.
void zero_private_slots() noexcept {
    for_each_private_slot([](const ThreadSlot& c) {
        auto& s = const_cast<ThreadSlot&>(c);
        constexpr size_t from = offsetof(ThreadSlot, other_bytes);
        std::memset(reinterpret_cast<unsigned char*>(&s) + from, 0, sizeof(ThreadSlot) - from);
    });
}

// The heap from before the attach, as the allocator counts it, read before
// the hooks take over: a block from before is in it once, and its free
// takes it off (count_before_attach).
void take_heap_baseline() noexcept {
    const uint64_t in_use = g_malloc_family ? collect::allocator_in_use_now() : 0;
    detail::g_attach_heap_baseline.store(in_use, std::memory_order_relaxed);
}

void redirect_now() noexcept {
    lock_scan(true);
    dl_iterate_phdr(count_adds, &g_adds);
    g_active.store(true, std::memory_order_release);
    scan_locked();
    unlock_scan();
}

}  // namespace

bool loaded_late() noexcept {
    g_self = self_base();
    int r[3] = {0, -1, -1};
    dl_iterate_phdr(find_libc, r);
    g_late = r[1] >= 0 && r[2] > r[1];
    return g_late;
}

bool prepare() noexcept {
    g_started = true;
    void* dir = mmap(nullptr, kRegions * sizeof(uint8_t*), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (dir == MAP_FAILED) return false;
    g_dir = static_cast<std::atomic<uint8_t*>*>(dir);
    Dl_info info{};
    void* self = dladdr(reinterpret_cast<void*>(&self_base), &info) && info.dli_fname
                     ? dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD)
                     : nullptr;
    if (!self) return false;
#define GOMETRICS_FIND(name, ...)                                                  \
    g_hook.name = reinterpret_cast<decltype(g_hook.name)>(dlsym(self, #name));     \
    g_libc.name = reinterpret_cast<decltype(g_libc.name)>(dlsym(RTLD_DEFAULT, #name));
    GOMETRICS_ATTACH_HOOKS(GOMETRICS_FIND)
#undef GOMETRICS_FIND
    gometrics_attach_real_dlopen = dlsym(RTLD_DEFAULT, "dlopen");
    g_malloc_family = bound_to_libc("malloc") && bound_to_libc("free");
    if (!g_malloc_family) g_malloc_family = adopt_library_allocator();
    build_table();
    return g_malloc_family;
}

void begin() noexcept {
    if (detail::g_shared.load(std::memory_order_acquire))  // the segment the constructor made
        g_attach_segment.store(detail::g_shared_serial.load(std::memory_order_acquire), std::memory_order_release);
    detail::g_attach_time_ns.store(detail::g_start_time_ns, std::memory_order_relaxed);
    take_heap_baseline();
    redirect_now();
}

namespace {

constinit std::atomic<const char*> g_refusal{nullptr};

// Kibibytes of the process's locked memory, and whether it may lock without
// limit (CAP_IPC_LOCK), from /proc/self/status.
struct Locked {
    uint64_t kib = 0;
    bool capable = false;
};

std::optional<Locked> locked_now() noexcept {
    char buf[4096];
    const auto text = gometrics::sys::read_file(AT_FDCWD, "/proc/self/status", buf, sizeof buf);
    const auto kib = text ? gometrics::sys::status_field(*text, "VmLck") : std::nullopt;
    if (!kib) return std::nullopt;
    const size_t at = text->find("\nCapEff:");
    const uint64_t caps = at == std::string_view::npos ? 0 : strtoull(text->data() + at + 8, nullptr, 16);
    return Locked{*kib, ((caps >> 14) & 1) != 0};  // CAP_IPC_LOCK
}

// Under mlockall(MCL_FUTURE) every page the agent maps is locked and charged
// to the program's RLIMIT_MEMLOCK: under a finite limit the program's own
// mappings (its heap's) would then fail for the agent's. Seen, not guessed:
// one page is mapped, and the kernel's count of locked memory says whether
// it was charged.
const char* locked_out() noexcept {
    static constexpr const char* kWhy =
        "the program locks its memory (mlockall) within RLIMIT_MEMLOCK: every page the agent mapped would be "
        "taken from what the program may lock";
    const int saved_errno = errno;
    const auto before = locked_now();
    void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const int map_errno = errno;
    const auto after = page == MAP_FAILED ? before : locked_now();
    if (page != MAP_FAILED) munmap(page, 4096);
    errno = saved_errno;
    if (page == MAP_FAILED) return map_errno == EAGAIN ? kWhy : nullptr;
    if (!before || !after || after->kib <= before->kib || after->capable) return nullptr;
    rlimit limit{};
    return getrlimit(RLIMIT_MEMLOCK, &limit) == 0 && limit.rlim_cur == RLIM_INFINITY ? nullptr : kWhy;
}

}  // namespace

const char* refusal() noexcept {
    const char* why = locked_out();
    g_refusal.store(why, std::memory_order_relaxed);
    if (why) {
        static constinit std::atomic<bool> said{false};
        log::once(said, {"attach: ", why, "; the agent stays out"});
    }
    return why;
}

bool active() noexcept { return g_active.load(std::memory_order_acquire); }

void rescan_on_tick() noexcept {
    if (g_active.load(std::memory_order_acquire)) rescan_if_loaded();
}

bool detached() noexcept { return g_detached.load(std::memory_order_acquire); }

void after_fork_child() noexcept { g_scanning.store(false, std::memory_order_relaxed); }

}  // namespace gometrics::agent::attach

using namespace gometrics::agent;

extern "C" int gometrics_attach() noexcept {
    using namespace attach;
    if (!g_late) return -1;  // preloaded: always counting
    if (g_active.load(std::memory_order_acquire)) return 0;
    if (!g_started) return refusal() ? -2 : -3;  // the load stayed out: only a new process may start it
    if (refusal()) return -2;
    Guard guard;
    InterruptionsHeld held;
    const int saved_errno = errno;
    if (!publisher_rearm()) {
        errno = saved_errno;
        return -1;
    }
    // No retired slot of the old segment is handed out from here: until the
    // new segment comes, a thread that catches up takes a private slot.
    g_attach_segment.store(0, std::memory_order_relaxed);
    retire_shared_slots();
    // The epoch before the map is cleared: a thread that marks a block
    // meanwhile has its mark cleared or sees the new epoch (settle_mark).
    // On x86 no fence is needed for that: a mark whose thread then read the
    // old epoch was already stored through the page-table entry the clearing
    // removes, and the kernel frees no page before such stores land.
    g_clearing.store(getpid(), std::memory_order_relaxed);
    g_epoch.fetch_add(1, std::memory_order_acq_rel);
    const int clear_error = clear_map();
    zero_private_slots();
    g_clearing.store(0, std::memory_order_release);
    if (clear_error) {
        static constinit std::atomic<bool> said{false};
        log::once(said, {"attach: could not clear which blocks were counted (", strerror(clear_error),
                         "): each gigabyte of heap that held them takes a new map"});
    }
    profile::start_again();  // samples freed while detached would lend their sizes to new blocks
    detail::g_threads_started_before_attach.store(detail::g_threads_started.load(std::memory_order_relaxed),
                                                  std::memory_order_relaxed);
    __atomic_fetch_add(&gometrics_attach_generation, 1, __ATOMIC_RELEASE);
    detail::g_start_time_ns = gometrics::sys::clock_ns(CLOCK_REALTIME);
    detail::g_attach_time_ns.store(detail::g_start_time_ns, std::memory_order_relaxed);
    g_detached.store(false, std::memory_order_release);
    // Blocks counted on the new segment's slots stay marked: its serial is
    // known before a thread can claim there. With no segment (it could not
    // be made) the serial is never reached, and threads count on private slots.
    g_attach_segment.store(detail::g_shared_serial.load(std::memory_order_acquire) + 1, std::memory_order_release);
    if (!publisher_create(true)) {
        g_detached.store(true, std::memory_order_release);
        errno = saved_errno;
        return -2;  // the CLI says so; the hooks stay off
    }
    publisher_mark_attached();
    take_heap_baseline();
    redirect_now();
    publisher_begin(true);
    errno = saved_errno;
    return 1;
}

extern "C" const char* gometrics_attach_refusal() noexcept {
    return attach::g_refusal.load(std::memory_order_relaxed);
}

extern "C" int gometrics_detach() noexcept {
    using namespace attach;
    if (!g_late) return -1;
    if (!g_active.load(std::memory_order_acquire)) return 0;
    Guard guard;
    InterruptionsHeld held;
    const int saved_errno = errno;
    lock_scan(true);
    g_active.store(false, std::memory_order_release);
    got::restore(g_table, g_table_size, g_self);
    unlock_scan();
    g_detached.store(true, std::memory_order_release);
    // Threads still inside a wrapper finish there: the agent stays mapped
    // (linked -z nodelete), and so does the old segment, where they count.
    publisher_detach();
    release_map();
    errno = saved_errno;
    return 1;
}
