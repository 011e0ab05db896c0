#include "shrink_guard.h"

#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>

namespace gometrics::sys {
namespace {

constexpr size_t kRanges = 1024;  // a reader of more segments at once is unguarded beyond
constexpr size_t kRecent = 64;    // fault addresses kept for faulted_since

struct Range {
    std::atomic<uintptr_t> start{0}, end{0};
};
constinit Range g_ranges[kRanges];
constinit std::atomic<bool> g_all{false};
constinit std::atomic<uint64_t> g_faults{0};
constinit std::atomic<uintptr_t> g_recent[kRecent]{};
constinit struct sigaction g_previous {};
constinit uintptr_t g_page = 4096;

// A range counts once its end is set (0 while it is being claimed or let go).
bool guarded(uintptr_t a) noexcept {
    if (g_all.load(std::memory_order_acquire)) return true;
    for (const Range& r : g_ranges) {
        const uintptr_t s = r.start.load(std::memory_order_acquire);
        if (s && a >= s && a < r.end.load(std::memory_order_acquire)) return true;
    }
    return false;
}

void on_sigbus(int sig, siginfo_t* info, void* context) {
    const auto a = reinterpret_cast<uintptr_t>(info->si_addr);
    if (info->si_code == BUS_ADRERR && guarded(a)) {
        const int saved_errno = errno;
        void* page = reinterpret_cast<void*>(a & ~(g_page - 1));
        const bool stood_in =
            mmap(page, g_page, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED;
        errno = saved_errno;
        if (stood_in) {
            // Readers look for their own faults, which their own thread
            // recorded before they look; other threads' may race here.
            const uint64_t n = g_faults.fetch_add(1, std::memory_order_acq_rel);
            g_recent[n % kRecent].store(a, std::memory_order_release);
            return;
        }
    }
    // Not ours: what was there before.
    if (g_previous.sa_flags & SA_SIGINFO) {
        g_previous.sa_sigaction(sig, info, context);
        return;
    }
    if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
        g_previous.sa_handler(sig);
        return;
    }
    // A fault repeats on return: with the old action back it takes it (the
    // default's core dump; an ignored fault is forced to the default too).
    // A SIGBUS that was sent, or a memory error reported after the fact,
    // does not come back by itself: ignored, it stays ignored here; else it
    // is raised again under the default action.
    const bool repeats = info->si_code > 0 && info->si_code != BUS_MCEERR_AO;
    if (!repeats && g_previous.sa_handler == SIG_IGN) return;
    sigaction(SIGBUS, &g_previous, nullptr);
    if (!repeats) raise(SIGBUS);
}

}  // namespace

void install_shrink_guard() noexcept {
    static constinit std::atomic<bool> installed{false};
    if (installed.exchange(true)) return;
    g_page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &g_previous);
}

void guard_all_files() noexcept {
    install_shrink_guard();
    g_all.store(true, std::memory_order_release);
}

bool guard_range(const void* start, size_t size) noexcept {
    const auto s = reinterpret_cast<uintptr_t>(start);
    for (Range& r : g_ranges) {
        uintptr_t expected = 0;
        if (r.start.load(std::memory_order_relaxed) == 0 &&
            r.start.compare_exchange_strong(expected, s, std::memory_order_acq_rel)) {
            r.end.store(s + size, std::memory_order_release);
            return true;
        }
    }
    return false;
}

void unguard_range(const void* start) noexcept {
    const auto s = reinterpret_cast<uintptr_t>(start);
    for (Range& r : g_ranges)
        if (r.start.load(std::memory_order_acquire) == s) {
            r.end.store(0, std::memory_order_release);  // first: a claim of the slot sets it anew
            r.start.store(0, std::memory_order_release);
            return;
        }
}

uint64_t shrink_faults() noexcept { return g_faults.load(std::memory_order_acquire); }

bool faulted_since(uint64_t since, const void* start, size_t size) noexcept {
    const uint64_t now = shrink_faults();
    if (now == since) return false;
    if (now - since > kRecent) return true;  // too many to tell apart: assume the worst
    const auto s = reinterpret_cast<uintptr_t>(start);
    for (uint64_t i = since; i < now; ++i) {
        const uintptr_t a = g_recent[i % kRecent].load(std::memory_order_relaxed);
        if (a >= s && a < s + size) return true;
    }
    return false;
}

}  // namespace gometrics::sys
