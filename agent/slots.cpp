// Thread slots: claiming, retiring at thread exit, and fork; see slots.h.
#include "slots.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "buffer.h"
#include "clocks.h"
#include "jemalloc_sizes.h"
#include "real.h"

namespace gometrics::agent {

namespace detail {
__thread ThreadSlot* tls_slot [[gnu::tls_model("initial-exec")]] = nullptr;
__thread ThreadSlot* tls_slow_slot [[gnu::tls_model("initial-exec")]] = nullptr;
__thread ThreadWords tls_words [[gnu::tls_model("initial-exec")]] = {};
GOMETRICS_BUFFER constinit ThreadSlot g_orphans{};
GOMETRICS_BUFFER constinit ThreadSlot g_inherited{};
constinit std::atomic<bool> g_orphans_used{false}, g_inherited_used{false};
constinit std::atomic<ThreadSlot*> g_slot_list{nullptr};
constinit std::atomic<const SharedSlots*> g_shared{nullptr};
constinit std::atomic<uint32_t> g_shared_claimed{0};
constinit std::atomic<uint32_t> g_shared_serial{0};
constinit SlotCopies g_snapshot_slots{nullptr, 0, nullptr};
constinit std::atomic<bool> g_restart_pending{false};
void (*g_restart_hook)() noexcept = nullptr;  // constant-initialised: a null pointer

ThreadSlot* orphans() noexcept {
    if (!g_orphans_used.load(std::memory_order_relaxed)) g_orphans_used.store(true, std::memory_order_release);
    return &g_orphans;
}
}  // namespace detail

namespace {

using namespace detail;

// Slots come from anonymous mappings of this many, never from malloc.
constexpr size_t kSlotsPerChunk = 16;
constinit std::atomic<uint64_t> g_chunk_bytes{0};
// claim_new_shared(): one extension of the claimed prefix at a time (0:
// free, 1: held, 2: held and waited for, woken by futex); and whether the
// region can take no more.
constinit std::atomic<uint32_t> g_extending{0};
constinit std::atomic<bool> g_shared_full{false};
// The forking thread's TLS word, from the prepare handler to the parent's.
__thread ThreadSlot* tls_before_fork [[gnu::tls_model("initial-exec")]] = nullptr;

pthread_key_t g_exit_key;
pthread_once_t g_exit_key_once = PTHREAD_ONCE_INIT;

// Runs as the thread exits (pthread key destructor): retire the slot with
// its counts. Anything this thread frees from now on goes to the orphans.
void on_thread_exit(void* p) {
    auto* slot = static_cast<ThreadSlot*>(p);
    tls_slot = marker(kExited);
    slot->state.store(kRetired, std::memory_order_release);
}

void create_exit_key() { (void)pthread_key_create(&g_exit_key, on_thread_exit); }

// A slot no live thread owns, shared ones first. Acquire on success: the
// claimer continues the previous owner's counts.
ThreadSlot* take_if_free(ThreadSlot* s) {
    uint32_t st = s->state.load(std::memory_order_relaxed);
    while (st == kFree || st == kRetired)
        if (s->state.compare_exchange_weak(st, kLive, std::memory_order_acquire, std::memory_order_relaxed)) return s;
    return nullptr;
}

// A shared slot no live thread owns.
ThreadSlot* claim_existing_shared() {
    if (const SharedSlots* sh = g_shared.load(std::memory_order_acquire)) {
        const uint32_t claimed = g_shared_claimed.load(std::memory_order_acquire);
        for (uint32_t i = 0; i < claimed && i < sh->count; ++i)
            if (void* p = sh->address(i))
                if (ThreadSlot* s = take_if_free(static_cast<ThreadSlot*>(p))) return s;
    }
    return nullptr;
}

// A private slot no live thread owns: only when the segment has no room
// (readers see private slots as of the last snapshot).
ThreadSlot* claim_existing_private() {
    for (ThreadSlot* s = g_slot_list.load(std::memory_order_acquire); s; s = s->next.load(std::memory_order_acquire))
        if (ThreadSlot* t = take_if_free(s)) return t;
    return nullptr;
}

// Takes g_extending within wait_ns, sleeping on the futex while another
// thread holds it (threads that poll instead starve the holder of CPU when
// hundreds start at once).
bool lock_extension(uint64_t wait_ns) noexcept {
    uint32_t was = 0;
    if (g_extending.compare_exchange_strong(was, 1, std::memory_order_acquire)) return true;
    const uint64_t deadline = sys::clock_ns(CLOCK_MONOTONIC) + wait_ns;
    while (g_extending.exchange(2, std::memory_order_acquire) != 0) {
        const uint64_t now = sys::clock_ns(CLOCK_MONOTONIC);
        if (now >= deadline) return false;
        const uint64_t left = deadline - now;
        const timespec ts{static_cast<time_t>(left / sys::kNsPerSec), static_cast<long>(left % sys::kNsPerSec)};
        const int saved_errno = errno;
        syscall(SYS_futex, &g_extending, FUTEX_WAIT_PRIVATE, 2, &ts, nullptr, 0);
        errno = saved_errno;
    }
    return true;
}

void unlock_extension() noexcept {
    if (g_extending.exchange(0, std::memory_order_release) == 2)
        syscall(SYS_futex, &g_extending, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

// Takes g_extending for a claimer: another thread's extension (a few
// stores, a read of /proc/self/status, a slot's pages) is waited for, since
// a slot taken private meanwhile reaches readers only through snapshots.
// Not for ever: a claimer
// stopped by a debugger may hold it, and then one wait of 100 ms says so to
// the claims that follow, which no longer wait until the flag comes free.
// Never when this thread holds it already.
__thread bool tls_extending [[gnu::tls_model("initial-exec")]] = false;
constinit std::atomic<bool> g_extension_stuck{false};
bool take_extension() noexcept {
    if (tls_extending) return false;
    const bool stuck = g_extension_stuck.load(std::memory_order_relaxed);
    if (!lock_extension(stuck ? 0 : 100 * 1000 * 1000)) {
        g_extension_stuck.store(true, std::memory_order_relaxed);
        return false;
    }
    if (stuck) g_extension_stuck.store(false, std::memory_order_relaxed);
    tls_extending = true;
    return true;
}

void give_extension() noexcept {
    tls_extending = false;
    unlock_extension();
}

// A new slot in the segment: zero (fresh pages), live for the caller.
// One thread at a time extends the claimed prefix, and only past a slot
// whose pages are reserved and which is already live: every slot below
// g_shared_claimed can be read (an unreserved tmpfs page may SIGBUS) and is
// owned by one thread (a fresh kFree slot taken by another claimer too would
// have two threads adding to it without a lock prefix).
ThreadSlot* claim_new_shared() {
    if (!g_shared.load(std::memory_order_relaxed) || g_shared_full.load(std::memory_order_relaxed)) return nullptr;
    if (!take_extension()) return nullptr;
    ThreadSlot* slot = nullptr;
    // Read under the flag: a re-attach retires the segment and a new one
    // comes in under it (retire_shared_slots), with its count from zero.
    if (const SharedSlots* sh = g_shared.load(std::memory_order_acquire)) {
        const uint32_t i = g_shared_claimed.load(std::memory_order_relaxed);
        if (i < sh->count) {
            if (void* p = sh->reserve(i)) {
                slot = static_cast<ThreadSlot*>(p);
                slot->state.store(kLive, std::memory_order_relaxed);
                g_shared_claimed.store(i + 1, std::memory_order_release);
                sh->used(i);
            }
        }
        // No room, or tmpfs full: private slots from now on, counted through
        // the remainder.
        if (!slot) g_shared_full.store(true, std::memory_order_relaxed);
    }
    give_extension();
    return slot;
}

// Waits out a claimer extending the prefix: it is running (the attach never
// stops a thread inside the agent), and holds the flag for a few stores.
// Not forever, and never taken from it: a claimer stopped by a debugger may
// not give it back. False then.
bool hold_extension() noexcept { return lock_extension(sys::kNsPerSec); }

ThreadSlot* claim_new_chunk() {
    constexpr size_t bytes = kSlotsPerChunk * sizeof(ThreadSlot);
    void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return nullptr;
    g_chunk_bytes.fetch_add(bytes, std::memory_order_relaxed);
    auto* slots = static_cast<ThreadSlot*>(mem);  // zeroed by the kernel: kFree, all counts 0
    slots[0].state.store(kLive, std::memory_order_relaxed);
    for (size_t i = 0; i + 1 < kSlotsPerChunk; ++i) slots[i].next.store(&slots[i + 1], std::memory_order_relaxed);
    ThreadSlot* head = g_slot_list.load(std::memory_order_relaxed);
    do {
        slots[kSlotsPerChunk - 1].next.store(head, std::memory_order_relaxed);
    } while (!g_slot_list.compare_exchange_weak(head, &slots[0], std::memory_order_release, std::memory_order_relaxed));
    return &slots[0];
}

}  // namespace

namespace detail {

ThreadSlot* slow_slot() noexcept {
    const auto m = reinterpret_cast<uintptr_t>(tls_slot);
    if (m == kAgentThread) return nullptr;
    if (m == kProbe) {
        tls_slot = marker(kAgentThread);
        return nullptr;
    }
    if (m == kExited || m == kForking) return orphans();
    if (m == kSlowSlot) return tls_words.slot;

    const int saved_errno = errno;  // mmap may fail: the hook's errno is the real call's
    // A forked child restarts publication first, so that its slot is in its
    // own segment.
    if (g_restart_pending.load(std::memory_order_relaxed) && g_restart_hook) [[unlikely]]
        g_restart_hook();
    // A handler's allocation in here would claim a second slot, left live.
    InterruptionsHeld held;
    // Read before the claim: a segment replaced meanwhile gets the older
    // serial, which only ever makes an attach count the block as from before.
    uint32_t segment = g_shared_serial.load(std::memory_order_acquire);
    ThreadSlot* slot = claim_existing_shared();
    if (!slot) slot = claim_new_shared();
    if (!slot) segment = 0;
    if (!slot) slot = claim_existing_private();
    if (!slot) slot = claim_new_chunk();
    if (!slot) {
        errno = saved_errno;
        return orphans();  // no memory for a slot: still counted
    }
    slot->tid = static_cast<int32_t>(syscall(SYS_gettid));
    tls_words.slot_segment = segment;
    // Publish the slot before pthread_setspecific, which may itself allocate
    // (keys past the first block) and so re-enter the hooks.
    if (g_glibc_chunks) {
        tls_slot = slot;
    } else {
        set_up_other_thread();
        tls_slow_slot = tls_words.slot = slot;
        tls_slot = marker(kSlowSlot);
    }
    pthread_once(&g_exit_key_once, create_exit_key);
    pthread_setspecific(g_exit_key, slot);
    errno = saved_errno;
    return slot;
}

}  // namespace detail

void mark_agent_thread() noexcept { tls_slot = marker(kAgentThread); }

void attach_shared_slots(const SharedSlots* shared) noexcept {
    // A claimer that still holds the flag would extend the new segment's
    // prefix from the old one's count: private slots only, then.
    if (!hold_extension()) return;
    g_shared_claimed.store(0, std::memory_order_relaxed);
    g_shared_full.store(false, std::memory_order_relaxed);
    g_shared.store(shared, std::memory_order_release);
    g_shared_serial.fetch_add(1, std::memory_order_release);
    unlock_extension();
}

void retire_shared_slots() noexcept {
    const bool held = hold_extension();
    g_shared.store(nullptr, std::memory_order_release);
    g_shared_claimed.store(0, std::memory_order_relaxed);
    g_shared_full.store(false, std::memory_order_relaxed);
    if (held) unlock_extension();
}

void adopt_shared_slot(ThreadSlot*& word) noexcept {
    const auto m = reinterpret_cast<uintptr_t>(word);
    ThreadSlot* const old = m == kSlowSlot ? tls_words.slot : (m > kMaxMarker ? word : nullptr);
    if (!old) return;
    const uint32_t segment = g_shared_serial.load(std::memory_order_acquire);
    ThreadSlot* const slot = claim_new_shared();
    if (!slot) return;  // it stays private: snapshots count it in the remainder
    tls_words.slot_segment = segment;
    // Everything after the bookkeeping: counters and the sampling schedule.
    constexpr size_t from = offsetof(ThreadSlot, sample_countdown);
    std::memcpy(reinterpret_cast<unsigned char*>(slot) + from, reinterpret_cast<unsigned char*>(old) + from,
                sizeof(ThreadSlot) - from);
    slot->tid = old->tid;
    std::memset(reinterpret_cast<unsigned char*>(old) + from, 0, sizeof(ThreadSlot) - from);
    old->state.store(kDead, std::memory_order_release);
    pthread_setspecific(g_exit_key, slot);
    if (m == kSlowSlot)
        tls_slow_slot = tls_words.slot = slot;
    else
        word = slot;
}

void slots_before_fork() noexcept {
    tls_before_fork = tls_slot;
    if (reinterpret_cast<uintptr_t>(tls_slot) > kMaxMarker || tls_slot == marker(kSlowSlot))
        tls_slot = marker(kForking);
}

void slots_after_fork_parent() noexcept {
    if (tls_slot == marker(kForking)) tls_slot = tls_before_fork;
}

void retire_slots_after_fork() noexcept {
    // The parent's shared slots, summed word by word (all of a slot's words
    // are counters but the bookkeeping; the inherited slot's schedule words
    // are never read).
    if (const SharedSlots* sh = g_shared.load(std::memory_order_acquire)) {
        constexpr size_t from = offsetof(ThreadSlot, sample_countdown) / 8, words = sizeof(ThreadSlot) / 8;
        auto* to = reinterpret_cast<uint64_t*>(&g_inherited);
        g_inherited_used.store(true, std::memory_order_relaxed);
        const uint32_t claimed = g_shared_claimed.load(std::memory_order_acquire);
        for (uint32_t i = 0; i < claimed && i < sh->count; ++i)
            if (const auto* p = static_cast<const uint64_t*>(sh->address(i)))
                for (size_t w = from; w < words; ++w) to[w] += load(p[w]);
        g_shared.store(nullptr, std::memory_order_release);
        g_shared_claimed.store(0, std::memory_order_relaxed);
    }
    g_extending.store(0, std::memory_order_relaxed);  // the parent's claimer is not here
    for (ThreadSlot* s = g_slot_list.load(std::memory_order_acquire); s; s = s->next.load(std::memory_order_acquire))
        if (s->state.load(std::memory_order_relaxed) == kLive) s->state.store(kRetired, std::memory_order_release);
    tls_slot = marker(kNoSlot);
}

namespace detail {
void demote_slot() noexcept {
    if (reinterpret_cast<uintptr_t>(tls_slot) <= kMaxMarker) return;
    tls_slow_slot = tls_words.slot = tls_slot;
    tls_slot = marker(kSlowSlot);
}

void restore_slot(ThreadSlot* saved) noexcept {
    tls_slot = saved;
    if (!g_glibc_chunks) demote_slot();
}

// Guard's work without restore_slot's demotion check: the allocator switch
// cannot happen inside malloc_usable_size.
size_t asked_usable_size(void* p) noexcept {
    ThreadSlot* const saved = tls_slot;
    tls_slot = marker(kAgentThread);
    const size_t usable = g_real.malloc_usable_size(p);
    tls_slot = saved;
    return usable;
}
}  // namespace detail

uint64_t slot_bytes() noexcept { return g_chunk_bytes.load(std::memory_order_relaxed); }

}  // namespace gometrics::agent
