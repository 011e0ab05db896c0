#include "shrink_guard.h"

#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>

namespace gometrics::sys {
namespace {

// Fault addresses kept for faulted_since. A fault happens once per page (the
// page stood in stays), so telling a reader's apart fails only past this
// many pages lost between two of its looks: 16 MiB, eight whole segments.
constexpr size_t kRecent = 4096;

constinit std::atomic<uint64_t> g_faults{0};
constinit std::atomic<uintptr_t> g_recent[kRecent]{};
constinit struct sigaction g_previous {};
constinit uintptr_t g_page = 4096;

void on_sigbus(int sig, siginfo_t* info, void* context) {
    const auto a = reinterpret_cast<uintptr_t>(info->si_addr);
    if (info->si_code == BUS_ADRERR) {
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
