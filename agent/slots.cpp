// Thread slots: claiming, retiring at thread exit, and fork; see slots.h.
#include "slots.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "real.h"

namespace gometrics::agent {

namespace detail {
__thread ThreadSlot* tls_slot [[gnu::tls_model("initial-exec")]] = nullptr;
__thread ThreadSlot* tls_slow_slot [[gnu::tls_model("initial-exec")]] = nullptr;
__thread void* tls_last_counted [[gnu::tls_model("initial-exec")]] = nullptr;
__thread void* tls_counted_free [[gnu::tls_model("initial-exec")]] = nullptr;
constinit ThreadSlot g_orphans{};
constinit std::atomic<ThreadSlot*> g_slot_list{nullptr};
constinit std::atomic<bool> g_restart_pending{false};
void (*g_restart_hook)() noexcept = nullptr;  // constant-initialised: a null pointer
}  // namespace detail

namespace {

using namespace detail;

// Slots come from anonymous mappings of this many, never from malloc.
constexpr size_t kSlotsPerChunk = 16;
constinit std::atomic<uint64_t> g_chunk_bytes{0};

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

ThreadSlot* claim_existing() {
    for (ThreadSlot* s = g_slot_list.load(std::memory_order_acquire); s; s = s->next.load(std::memory_order_acquire)) {
        uint32_t st = s->state.load(std::memory_order_relaxed);
        // Acquire on success: we continue the previous owner's counts.
        while (st != kLive)
            if (s->state.compare_exchange_weak(st, kLive, std::memory_order_acquire, std::memory_order_relaxed))
                return s;
    }
    return nullptr;
}

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
    if (m == kExited) return &g_orphans;
    if (m == kSlowSlot) return tls_slow_slot;

    const int saved_errno = errno;  // mmap may fail: the hook's errno is the real call's
    ThreadSlot* slot = claim_existing();
    if (!slot) slot = claim_new_chunk();
    if (!slot) {
        errno = saved_errno;
        return &g_orphans;  // no memory for a slot: still counted
    }
    slot->tid = static_cast<int32_t>(syscall(SYS_gettid));
    // Publish the slot before pthread_setspecific, which may itself allocate
    // (keys past the first block) and so re-enter the hooks.
    if (g_glibc_chunks) {
        tls_slot = slot;
    } else {
        tls_slow_slot = slot;
        tls_slot = marker(kSlowSlot);
    }
    pthread_once(&g_exit_key_once, create_exit_key);
    pthread_setspecific(g_exit_key, slot);
    if (g_restart_pending.load(std::memory_order_relaxed) && g_restart_hook) [[unlikely]]
        g_restart_hook();
    errno = saved_errno;
    return slot;
}

}  // namespace detail

void mark_agent_thread() noexcept { tls_slot = marker(kAgentThread); }

void retire_slots_after_fork() noexcept {
    for (ThreadSlot* s = g_slot_list.load(std::memory_order_acquire); s; s = s->next.load(std::memory_order_acquire))
        if (s->state.load(std::memory_order_relaxed) == kLive) s->state.store(kRetired, std::memory_order_release);
    const auto m = reinterpret_cast<uintptr_t>(tls_slot);
    if (m > kMaxMarker || m == kSlowSlot) tls_slot = marker(kNoSlot);
}

namespace detail {
void demote_slot() noexcept {
    if (reinterpret_cast<uintptr_t>(tls_slot) <= kMaxMarker) return;
    tls_slow_slot = tls_slot;
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
