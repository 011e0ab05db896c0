// The crash handler and the sigaction/signal hooks that hide it; see crash.h.
#include "crash.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "publisher.h"
#include "real.h"

#define GOMETRICS_EXPORT extern "C" [[gnu::visibility("default")]]

namespace gometrics::agent {

namespace {

constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
constexpr int kMaxSignal = 32;

// Whether our handler holds the signal's action. Cleared when the program
// sets an action of its own: from then on the signal is the program's.
constinit std::atomic<bool> g_ours[kMaxSignal] = {};
constinit std::atomic<bool> g_crashed{false};

bool is_ours(int sig) { return sig > 0 && sig < kMaxSignal && g_ours[sig].load(std::memory_order_acquire); }

void on_crash(int sig, siginfo_t* info, void*) {
    const int saved_errno = errno;
    // SA_RESETHAND put the default action back. Only the first crashing
    // thread writes; another one dies by the default action meanwhile.
    g_ours[sig].store(false, std::memory_order_release);
    if (!g_crashed.exchange(true, std::memory_order_acq_rel)) publisher_crash();
    // A fault comes back when the instruction runs again, now with the
    // default action. A signal sent (kill, raise, abort) is sent again:
    // blocked while this handler runs, it arrives as the handler returns.
    if (info->si_code <= 0) syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sig);
    errno = saved_errno;
}

decltype(&::sigaction) real_sigaction() noexcept {
    if (!detail::g_real.sigaction) detail::resolve_real();
    return real_fn<&RealFunctions::sigaction>();
}

// What the program sees of an action of ours: the default.
void hide(struct sigaction* old) {
    *old = {};
    old->sa_handler = SIG_DFL;
}

}  // namespace

void crash_install() noexcept {
    const auto sigaction_fn = real_sigaction();
    if (!sigaction_fn) return;
    for (int sig : kSignals) {
        struct sigaction old {};
        if (sigaction_fn(sig, nullptr, &old) != 0 || (old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL) continue;
        struct sigaction act {};
        act.sa_sigaction = on_crash;
        sigfillset(&act.sa_mask);  // nothing of the program's runs inside, nor a second crash signal
        // SA_ONSTACK: on the thread's alternate stack if the program gave it one (a Go runtime, a stack overflow handler).
        act.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_ONSTACK | SA_RESTART;
        g_ours[sig].store(true, std::memory_order_release);
        if (sigaction_fn(sig, &act, nullptr) != 0) g_ours[sig].store(false, std::memory_order_relaxed);
    }
}

}  // namespace gometrics::agent

using namespace gometrics::agent;

GOMETRICS_EXPORT int sigaction(int sig, const struct sigaction* act, struct sigaction* old) noexcept {
    const auto real = real_sigaction();
    if (!is_ours(sig)) return real(sig, act, old);
    const int rc = real(sig, act, old);
    if (rc == 0) {
        if (old) hide(old);
        if (act) g_ours[sig].store(false, std::memory_order_release);
    }
    return rc;
}

// glibc's signal() sets the action without going through sigaction's PLT
// entry: it needs a hook of its own.
GOMETRICS_EXPORT sighandler_t signal(int sig, sighandler_t handler) noexcept {
    if (!is_ours(sig)) {
        if (!detail::g_real.signal) detail::resolve_real();
        return real_fn<&RealFunctions::signal>()(sig, handler);
    }
    struct sigaction act {}, old{};
    act.sa_handler = handler;
    sigemptyset(&act.sa_mask);
    sigaddset(&act.sa_mask, sig);
    act.sa_flags = SA_RESTART;  // BSD semantics, as glibc's signal() gives
    if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
    return old.sa_handler;
}
