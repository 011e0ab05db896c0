// Per-thread counters: the only state the hot path writes.
//
// Each thread that enters a hook claims a ThreadSlot (cold path, lock-free)
// and keeps a pointer to it in initial-exec TLS. Once the segment exists,
// slots are claimed in its live region (layout::LiveHeader), where readers
// fold them themselves: exact and fresh whether or not the process runs any
// code of ours at the time, and still there after it died. Slots claimed
// before (other libraries' constructors), beyond the region's capacity, the
// orphans and what a forked child inherited are private: snapshots add them
// in as the fold's remainder. Only that thread writes the
// slot's counters, with a relaxed load and a release store (no lock-prefixed
// read-modify-write); the publisher reads them with acquire loads. When the
// thread exits its slot is retired with its counts intact and becomes part
// of the retired total; a later thread may claim it and keep counting on top,
// so the sum over all slots is always the process total and never goes down.
//
// Frees that arrive after a thread's exit destructor (glibc's thread freeres,
// late TLS destructors) go to the shared `orphans` slot with atomic RMWs:
// rare, and counted without resurrecting a slot.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdint>

#include "buckets.h"

#pragma GCC visibility push(hidden)  // see real.h

namespace gometrics::agent {

// Which side of a heap counter pair: the allocations or the frees.
enum HeapSide : unsigned { kAllocs = 0, kFrees = 1 };

// One small size's entry: 32 bytes, indexed by the size itself (small_entry).
struct SmallSize {
    uint64_t count[2];   // [kAllocs], [kFrees]
    int64_t call_left;   // allocations before the hook calls out: at 0 or below
    uint64_t sample_at;  // the count at which the next heap sample falls (0: never drawn)
};
static_assert(sizeof(SmallSize) == 32, "small_entry() indexes by usable * 4");

struct alignas(64) ThreadSlot {
    // Slot bookkeeping (cold): state is kFree, kLive or kRetired.
    std::atomic<uint32_t> state;
    int32_t tid;                    // owner's tid while live
    std::atomic<ThreadSlot*> next;  // all slots ever created, a push-only list

    // Heap profiling's schedule (owner only, never published; see profile.h)
    // for the sizes that are not small: bytes left until the hook calls out
    // (the next sample, or sooner to poll for a lazy publisher), the bytes
    // from there to the sample, whether it was ever drawn; and the thread's
    // random state.
    alignas(64) int64_t sample_countdown;
    int64_t sample_beyond;
    uint64_t sample_rng;
    uint32_t countdown_drawn;
    // Heap (heap collector), in usable sizes, [kAllocs] and [kFrees] side by
    // side. Small sizes (buckets::is_small) count objects per exact size:
    // their bytes are size times count; with the two counts, the size's
    // sampling schedule (owner only, never published): the allocations left
    // before the hook calls out (a countdown, so that the hook tests the
    // flags of one decrement), and the count at which the next heap sample
    // falls (0: never drawn), so a malloc and the free of a size touch one
    // cache line. Other sizes count their bytes and a log-linear
    // bucket (buckets::size_index).
    uint64_t other_bytes[2];
    SmallSize small[buckets::kSmallCounts];
    uint64_t other_by_size[buckets::kSizeCounts][2];

    // Lock contention (sync collector): only contended acquisitions.
    alignas(64) uint64_t contentions, wait_ns;
    uint64_t wait_by_time[buckets::kTimeCounts];

    // An attached agent (attach.cpp): blocks from before the attach that
    // this thread freed, in the allocator's own measure (what its in-use
    // figure counts of them: glibc's whole chunk, another allocator's
    // usable size), taken off the in-use figure read at the attach.
    uint64_t before_attach_freed;
};

// small[usable / 8] for a small usable size (a multiple of 8): the size is
// a quarter of the byte offset of its entry, so the hot path needs no
// shift. (A corrupt glibc header, a free of something malloc never
// returned, could give -8 at worst: before small[0], still inside the slot.)
[[gnu::always_inline]] inline SmallSize* small_entry(ThreadSlot* s, uint64_t usable) noexcept {
    return reinterpret_cast<SmallSize*>(reinterpret_cast<unsigned char*>(s->small) + 4 * usable);
}
// The same for a glibc chunk of `chunk` bytes (usable: chunk - 8), written so
// that the -8 folds into the instruction's displacement.
[[gnu::always_inline]] inline SmallSize* small_entry_of_chunk(ThreadSlot* s, uint64_t chunk) noexcept {
    return reinterpret_cast<SmallSize*>(reinterpret_cast<unsigned char*>(s->small) + 4 * chunk - 32);
}
[[gnu::always_inline]] inline uint64_t& small_counter(ThreadSlot* s, uint64_t usable, HeapSide side) noexcept {
    return small_entry(s, usable)->count[side];
}
[[gnu::always_inline]] inline int64_t& small_call_left(ThreadSlot* s, uint64_t usable) noexcept {
    return small_entry(s, usable)->call_left;
}
[[gnu::always_inline]] inline uint64_t& small_sample_at(ThreadSlot* s, uint64_t usable) noexcept {
    return small_entry(s, usable)->sample_at;
}

// kDead: a private slot whose counts moved into the segment; never claimed again.
enum SlotState : uint32_t { kFree = 0, kLive = 1, kRetired = 2, kDead = 3 };

// Owner-only increment. Single writer, so no lock prefix is needed; the
// store must still be ordered before anything the thread does next (handing
// the block to another thread that frees it; see the sum order in
// collectors/heap.cpp). On x86-64 it is one `add` to memory: TSO orders it
// as a release store, and a signal handler that allocates on this thread
// cannot land between a load and a store and lose a count.
// Elsewhere: a relaxed load and a release store.
[[gnu::always_inline]] inline void bump(uint64_t& counter, uint64_t v) noexcept {
#if defined(__x86_64__)
    asm volatile("addq %1, %0" : "+m"(counter) : "er"(v) : "memory");
#else
    std::atomic_ref<uint64_t> c(counter);
    c.store(c.load(std::memory_order_relaxed) + v, std::memory_order_release);
#endif
}
// Shared-slot increment (orphans): rare, so an atomic RMW is fine.
inline void bump_shared(uint64_t& counter, uint64_t v) noexcept {
    std::atomic_ref<uint64_t>(counter).fetch_add(v, std::memory_order_acq_rel);
}
inline uint64_t load(const uint64_t& counter) noexcept {
    return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(counter)).load(std::memory_order_acquire);
}

namespace detail {
// TLS of the calling thread: its slot when the hooks may count inline (a
// claimed slot, and the real malloc is glibc's, whose chunk headers they
// read: real.h), else one of these markers; with kSlowSlot (any other
// allocator) the slot is in tls_words.slot. Initial-exec, a few words: no
// __tls_get_addr, no allocation, no static-TLS pressure.
inline constexpr uintptr_t kNoSlot = 0;       // not claimed yet
inline constexpr uintptr_t kExited = 1;       // the thread's exit destructor ran
inline constexpr uintptr_t kAgentThread = 2;  // the agent's own work: never counted
inline constexpr uintptr_t kSlowSlot = 3;     // claimed, in tls_words.slot: counted out of line
// The start-up probe (agent.cpp): the first hook that sees it turns it into
// kAgentThread, which tells the probe that a call reached the agent.
inline constexpr uintptr_t kProbe = 4;
// From the agent's fork prepare handler to its parent or child handler: the
// forking thread counts on the orphans, so that nothing the child does
// before it has a segment of its own lands in the parent's shared slot.
inline constexpr uintptr_t kForking = 5;
inline constexpr uintptr_t kMaxMarker = 5;

// __thread, not thread_local: no TLS wrapper call on each access.
extern __thread ThreadSlot* tls_slot [[gnu::tls_model("initial-exec")]];
extern __thread ThreadSlot* tls_slow_slot [[gnu::tls_model("initial-exec")]];
// The calling thread's words for the hooks' other paths than glibc's inline
// one, in one block: a hook finds them all from one TLS offset.
struct ThreadWords {
    // With kSlowSlot: the slot, as in tls_slow_slot (which the hooks do not
    // read: attach.cpp's reset still writes it).
    ThreadSlot* slot;
    // The block the calling thread's slow path counted last, until it is
    // freed (hooks_new.cpp asks whether an operator new it wraps reached
    // malloc's hook).
    void* last_counted;
    // The block a counted operator delete is releasing: free's hook, should
    // the real delete call free, must not count it again.
    void* counted_free;
    // jemalloc's count of the bytes this thread freed, or null (another
    // allocator, or not set up: the size is asked); and the part of its
    // movement that hooks already attributed (jemalloc_sizes.h).
    const uint64_t* freed;
    uint64_t freed_attributed;
    // Which segment the slot it claimed last lies in (g_shared_serial then),
    // 0 for a private one: an attach asks whether a block was counted in
    // its own segment (attach.cpp).
    uint32_t slot_segment;
};
extern __thread ThreadWords tls_words [[gnu::tls_model("initial-exec")]];
extern ThreadSlot g_orphans;

inline ThreadSlot* marker(uintptr_t m) noexcept { return reinterpret_cast<ThreadSlot*>(m); }

// Cold path of current_slot(): claims a slot, or returns the orphan slot or
// nullptr (agent thread, or the reentrancy guard is up).
[[gnu::noinline, gnu::cold]] ThreadSlot* slow_slot() noexcept;

// The real malloc stops being glibc's (the allocator switch, while the
// calling thread is the only one): its slot moves out of the inline path.
void demote_slot() noexcept;
// Guard's exit: the saved TLS back, demoted if the switch happened inside.
void restore_slot(ThreadSlot* saved) noexcept;
}  // namespace detail

// The slot the calling thread counts into; nullptr: do not count.
[[gnu::always_inline]] inline ThreadSlot* current_slot() noexcept {
    ThreadSlot* s = detail::tls_slot;
    if (reinterpret_cast<uintptr_t>(s) > detail::kMaxMarker) [[likely]]
        return s;
    if (s == detail::marker(detail::kSlowSlot)) [[likely]]  // another allocator than glibc's
        return detail::tls_words.slot;
    return detail::slow_slot();
}

inline bool is_orphans(const ThreadSlot* s) noexcept { return s == &detail::g_orphans; }

// Marks the calling thread as the agent's own (publisher): never counted.
void mark_agent_thread() noexcept;

// Reentrancy guard for the agent's own work on an application thread:
// while one is alive, hooks on this thread forward without counting.
class Guard {
public:
    Guard() noexcept : saved_(detail::tls_slot) { detail::tls_slot = detail::marker(detail::kAgentThread); }
    ~Guard() { detail::restore_slot(saved_); }
    ThreadSlot*& saved() noexcept { return saved_; }  // what the TLS word gets back
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

private:
    ThreadSlot* saved_;
};

// Around the agent's longer work on a program thread (a heap sample's
// unwinding, a snapshot taken for a reader, a slot's claim), under a Guard
// or not: a signal handler of the program that allocated in that window
// would have its blocks taken for the agent's (uncounted) and their frees
// counted, so its signals wait for the few microseconds instead. So does a
// cancel: the work reads /proc with pread, a cancellation point, which would
// unwind the thread out of its malloc with the agent's flags still held.
class InterruptionsHeld {
public:
    InterruptionsHeld() noexcept {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old_);
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_);
    }
    ~InterruptionsHeld() {
        // The mask first: an asynchronous cancel pending acts as the state
        // comes back, and its cleanup must run with the thread's own mask.
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
        pthread_setcancelstate(cancel_, nullptr);
    }
    InterruptionsHeld(const InterruptionsHeld&) = delete;
    InterruptionsHeld& operator=(const InterruptionsHeld&) = delete;

private:
    sigset_t old_;
    int cancel_;
};

// Publisher side: visit every slot ever created, orphans included, and the
// private ones alone (the fold's remainder).
template <class F>
void for_each_slot(F&& f);
template <class F>
void for_each_private_slot(F&& f);

// The segment's live region, where slots are claimed from now on (publisher,
// once the segment exists; null: none, as in a forked child until it has
// its own). Threads with a private slot keep it, but for the caller's
// (adopt_shared_slot()).
struct SharedSlots {
    void* (*reserve)(uint32_t i) noexcept;  // slot i's memory, pages reserved, or null
    void (*used)(uint32_t i) noexcept;      // readers fold slots up to i from now on
    void* (*address)(uint32_t i) noexcept;  // slot i's memory (reserved or never used)
    uint32_t count;
};
void attach_shared_slots(const SharedSlots* shared) noexcept;
// A re-attach, before its epoch moves: no slot of the old segment is handed
// out again (its counts no longer reach readers); until the new segment
// comes, threads take private slots.
void retire_shared_slots() noexcept;
// The calling thread's private slot, if it has one, moves into the segment
// (the agent's constructor: the main thread's counts from before it). `word`
// is what the thread's TLS word will hold again: the constructor's Guard's.
void adopt_shared_slot(ThreadSlot*& word) noexcept;

// fork: prepare and parent handlers (the forking thread counts on the
// orphans in between), and in the child: the parent's shared slots are
// summed into a private slot, then forgotten (their mapping goes with the
// parent's segment; see publisher_forget_after_fork()).
void slots_before_fork() noexcept;
void slots_after_fork_parent() noexcept;
// After fork, in the child: every live slot belongs to a thread that does
// not exist here (or to the forking thread, which claims one afresh): retire
// them all, and make the calling thread's next hook take the cold path.
void retire_slots_after_fork() noexcept;

// Memory the agent holds for slots (for /memory/classes/other).
uint64_t slot_bytes() noexcept;

namespace detail {
extern std::atomic<ThreadSlot*> g_slot_list;
extern ThreadSlot g_inherited;  // a forked child's: its parent's shared slots at the fork
// Set before the first count on g_orphans, and in a child with inherited
// counts: until then the pages of the two are never read (nor faulted in).
extern std::atomic<bool> g_orphans_used, g_inherited_used;
extern std::atomic<const SharedSlots*> g_shared;
extern std::atomic<uint32_t> g_shared_serial;  // one more at each attach_shared_slots(), from 1
// While a snapshot is computed: copies of the shared slots, and the sum of
// the private ones, taken once in the fold's pass order (every slot's frees
// before any slot's allocations), which for_each_slot visits instead: every
// value of the snapshot and its fold remainder come from one reading, and no
// free is counted without its allocation, whichever slots the two were on.
// private_sum is set while they are taken, even with no shared slot.
struct SlotCopies {
    const ThreadSlot* slots;  // null when count is 0
    uint32_t count;
    const ThreadSlot* private_sum;  // the folded words only (all for_each_slot's callers read)
};
extern SlotCopies g_snapshot_slots;
extern std::atomic<uint32_t> g_shared_claimed;  // shared slots handed out: reserved, never kFree
// Set in a forked child: the next slot claimed (the child's first counted
// call) runs g_restart_hook (agent.cpp restarts publication there), outside
// the atfork handler.
extern std::atomic<bool> g_restart_pending;
extern void (*g_restart_hook)() noexcept;
}  // namespace detail

template <class F>
void for_each_private_slot(F&& f) {
    if (detail::g_orphans_used.load(std::memory_order_acquire)) f(static_cast<const ThreadSlot&>(detail::g_orphans));
    if (detail::g_inherited_used.load(std::memory_order_acquire))
        f(static_cast<const ThreadSlot&>(detail::g_inherited));
    for (ThreadSlot* s = detail::g_slot_list.load(std::memory_order_acquire); s;
         s = s->next.load(std::memory_order_acquire))
        f(static_cast<const ThreadSlot&>(*s));
}

template <class F>
void for_each_slot(F&& f) {
    if (const detail::SlotCopies& c = detail::g_snapshot_slots; c.private_sum) {
        f(*c.private_sum);
        for (uint32_t i = 0; i < c.count; ++i) f(c.slots[i]);
        return;
    }
    for_each_private_slot(f);
    if (const SharedSlots* sh = detail::g_shared.load(std::memory_order_acquire)) {
        const uint32_t claimed = detail::g_shared_claimed.load(std::memory_order_acquire);
        for (uint32_t i = 0; i < claimed && i < sh->count; ++i)
            if (const void* p = sh->address(i)) f(*static_cast<const ThreadSlot*>(p));
    }
}

}  // namespace gometrics::agent

#pragma GCC visibility pop
