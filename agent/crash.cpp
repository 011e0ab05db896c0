// The crash handler and the sigaction/signal hooks that hide it; see crash.h.
#include "crash.h"

#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "clocks.h"
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
constinit std::atomic<bool> g_reported{false};

bool is_ours(int sig) { return sig > 0 && sig < kMaxSignal && g_ours[sig].load(std::memory_order_acquire); }

decltype(&::sigaction) real_sigaction() noexcept;

void on_crash(int sig, siginfo_t* info, void*) {
    const int saved_errno = errno;
    if (!g_crashed.exchange(true, std::memory_order_acq_rel)) {
        publisher_crash();
        g_reported.store(true, std::memory_order_release);
    } else {
        // Another thread crashed first and writes the report: dying now
        // would cut it short. Wait for it, two seconds at most.
        for (int ms = 0; ms < 2000 && !g_reported.load(std::memory_order_acquire); ++ms) {
            sys::pause_ns(1000000);
        }
    }
    // The default action back (not SA_RESETHAND: a second thread's signal
    // must reach this handler and wait, not kill the process mid-report).
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    g_ours[sig].store(false, std::memory_order_release);
    real_sigaction()(sig, &dfl, nullptr);
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
        act.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
        g_ours[sig].store(true, std::memory_order_release);
        if (sigaction_fn(sig, &act, nullptr) != 0) g_ours[sig].store(false, std::memory_order_relaxed);
    }
}

}  // namespace gometrics::agent

using namespace gometrics::agent;

GOMETRICS_EXPORT int sigaction(int sig, const struct sigaction* act, struct sigaction* old) noexcept {
    const auto real = real_sigaction();
    if (!is_ours(sig)) return real(sig, act, old);
    // SIG_DFL asked again (daemons reset every signal at start): ours stands
    // for it already, and stays.
    if (act && !(act->sa_flags & SA_SIGINFO) && act->sa_handler == SIG_DFL) {
        if (old) hide(old);
        return 0;
    }
    const int rc = real(sig, act, old);
    if (rc == 0) {
        if (old) hide(old);
        if (act) g_ours[sig].store(false, std::memory_order_release);
    }
    return rc;
}

// What a handler-setting call other than sigaction returned for a signal of
// ours: the default, and the signal is the program's from now on (unless it
// asked for the default, which ours stands for).
template <class Fn>
sighandler_t set_and_hide(int sig, sighandler_t handler, Fn&& set) noexcept {
    if (!is_ours(sig)) return set();
    if (handler == SIG_DFL) return SIG_DFL;
    const sighandler_t old = set();
    if (handler == SIG_HOLD) return old == SIG_ERR ? old : SIG_DFL;  // the action stays ours
    if (old != SIG_ERR) {
        g_ours[sig].store(false, std::memory_order_release);
        return SIG_DFL;
    }
    return old;
}

// glibc's signal() sets the action without going through sigaction's PLT
// entry: it needs a hook of its own.
GOMETRICS_EXPORT sighandler_t signal(int sig, sighandler_t handler) noexcept {
    if (!detail::g_real.signal) detail::resolve_real();
    return set_and_hide(sig, handler, [&] { return real_fn<&RealFunctions::signal>()(sig, handler); });
}

// The same for the BSD and System V flavours, which glibc also sets inside.
GOMETRICS_EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler) noexcept { return signal(sig, handler); }

GOMETRICS_EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler) noexcept {
    if (!detail::g_real.sysv_signal) detail::resolve_real();
    return set_and_hide(sig, handler, [&] { return real_fn<&RealFunctions::sysv_signal>()(sig, handler); });
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
GOMETRICS_EXPORT sighandler_t sigset(int sig, sighandler_t handler) noexcept {
    if (!detail::g_real.sigset) detail::resolve_real();
    return set_and_hide(sig, handler, [&] { return real_fn<&RealFunctions::sigset>()(sig, handler); });
}
#pragma GCC diagnostic pop
