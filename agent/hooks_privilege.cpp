// Calls that take away what the agent may do, interposed so the agent
// steps aside before they take effect: a seccomp filter (prctl, and the
// syscall() that libseccomp and others go through) and a change of the
// effective uid. A program that confines itself with a raw system call is
// found out from /proc/self/status at the next snapshot instead.
#include <errno.h>
#include <linux/seccomp.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "catalog.h"
#include "kept_file.h"
#include "profile.h"
#include "publisher.h"
#include "real.h"

#define GOMETRICS_EXPORT extern "C" [[gnu::visibility("default")]]

namespace gometrics::agent {
namespace {

// The system call itself, with glibc's syscall() semantics (-1 and errno on
// failure): the hook must not depend on resolving the real one, since the
// agent itself calls syscall() during its own start-up.
long forward(long nr, long a, long b, long c, long d, long e, long f) noexcept {
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    if (static_cast<unsigned long>(ret) > -4096UL) {
        errno = static_cast<int>(-ret);
        return -1;
    }
    return ret;
}

// A filter is about to apply (to this thread, or with TSYNC to all): from
// here on only calls it is likely to allow are ours, and a snapshot begun
// before must end first.
void before_filter() noexcept {
    const int saved_errno = errno;
    publisher_before_confinement();
    sys::set_confined(true);
    publisher_wait_for_snapshot();
    profile::before_confinement();
    errno = saved_errno;
}

// The filter was refused (libseccomp probes flags so): the agent's calls are
// its own again, unless a filter installed since start-up holds.
void after_failed_filter() noexcept {
    const int saved_errno = errno;
    if (!collect::filtered_since_start()) sys::set_confined(false);
    errno = saved_errno;
}

// The user ids a set*uid call asks for (-1: unchanged), as the kernel will
// set them.
struct Uids {
    uid_t r, e, s;
};
constexpr uid_t kSame = static_cast<uid_t>(-1);

// A drop for good: root now, and real, effective and saved ids all leave it
// (a seteuid that keeps root in the saved id comes back, as sshd's does).
// Then the segment, and the report, become the new user's first, so that
// the process can still remove and write them at exit; given back to root
// if the call fails. Never for a confined program: fchown may be forbidden.
// after(now): the ids the call will leave.
template <class After, class Call>
int drop(After after, Call call) noexcept {
    Uids now{};
    const int saved_errno = errno;
    bool given = false;
    // confined_now, not sys::confined: a filter set by a raw system call is
    // found in status, read with pread alone.
    if (!collect::confined_now() && getresuid(&now.r, &now.e, &now.s) == 0 && now.e == 0) {
        const Uids u = after(now);
        given = u.r != 0 && u.e != 0 && u.s != 0 && publisher_before_uid_drop(u.e);
    }
    errno = saved_errno;
    const int rc = call();
    if (rc != 0 && given) {
        const int call_errno = errno;
        (void)publisher_before_uid_drop(0);
        errno = call_errno;
    }
    return rc;
}

uid_t or_now(uid_t asked, uid_t now) noexcept { return asked == kSame ? now : asked; }

}  // namespace
}  // namespace gometrics::agent

using namespace gometrics::agent;

static_assert(sizeof(long) == 8, "forward() is the x86-64 system call convention");

// syscall(SYS_seccomp, ...): the filter path of the hook below.
extern "C" [[gnu::visibility("hidden"), gnu::used]] long gometrics_syscall_seccomp(long nr, long a, long b, long c,
                                                                                     long d, long e) noexcept {
    if (a != SECCOMP_SET_MODE_FILTER && a != SECCOMP_SET_MODE_STRICT) return forward(nr, a, b, c, d, e, 0);
    before_filter();
    const long ret = forward(nr, a, b, c, d, e, 0);
    if (ret == -1) after_failed_filter();
    return ret;
}

// syscall() itself is a leaf, as glibc's is: a clone onto a new stack (the
// child returns through that stack) or a vfork must find no frame of ours.
// Only SYS_seccomp leaves it, by a tail jump.
static_assert(SYS_seccomp == 317 && SYS_clone == 56, "x86-64 numbers below");
__asm__(R"(
    .text
    .globl syscall
    .type syscall, @function
syscall:
    cmpq $317, %rdi
    je gometrics_syscall_seccomp
    movq %rdi, %rax
    movq %rsi, %rdi
    movq %rdx, %rsi
    movq %rcx, %rdx
    movq %r8, %r10
    movq %r9, %r8
    movq 8(%rsp), %r9
    syscall
    cmpq $-4095, %rax
    jae 1f
    ret
1:
    negl %eax
    pushq %rax
    call *__errno_location@GOTPCREL(%rip)
    popq %rcx
    movl %ecx, (%rax)
    movq $-1, %rax
    ret
    .size syscall, .-syscall
)");

GOMETRICS_EXPORT int prctl(int option, ...) noexcept {
    va_list ap;
    va_start(ap, option);
    const unsigned long a = va_arg(ap, unsigned long), b = va_arg(ap, unsigned long);
    const unsigned long c = va_arg(ap, unsigned long), d = va_arg(ap, unsigned long);
    va_end(ap);
    if (option != PR_SET_SECCOMP) return static_cast<int>(forward(SYS_prctl, option, long(a), long(b), long(c), long(d), 0));
    before_filter();
    const long ret = forward(SYS_prctl, option, long(a), long(b), long(c), long(d), 0);
    if (ret == -1) after_failed_filter();
    return static_cast<int>(ret);
}

// glibc's set*id calls must stay glibc's: in a threaded process they change
// every thread's credentials, not only the caller's.
// Root's setuid sets all three ids (drop() looks at root's calls only).
GOMETRICS_EXPORT int setuid(uid_t uid) noexcept {
    return drop([=](const Uids&) { return Uids{uid, uid, uid}; }, [=] { return real().setuid(uid); });
}

GOMETRICS_EXPORT int seteuid(uid_t euid) noexcept {
    return drop([=](const Uids& n) { return Uids{n.r, or_now(euid, n.e), n.s}; },
                [=] { return real().seteuid(euid); });
}

// The saved id follows the new effective one when the real id is set, or
// the effective one is set to other than the real one (setreuid(2)).
GOMETRICS_EXPORT int setreuid(uid_t ruid, uid_t euid) noexcept {
    return drop(
        [=](const Uids& n) {
            const uid_t e = or_now(euid, n.e);
            const bool saved_follows = ruid != kSame || (euid != kSame && euid != n.r);
            return Uids{or_now(ruid, n.r), e, saved_follows ? e : n.s};
        },
        [=] { return real().setreuid(ruid, euid); });
}

GOMETRICS_EXPORT int setresuid(uid_t ruid, uid_t euid, uid_t suid) noexcept {
    return drop([=](const Uids& n) { return Uids{or_now(ruid, n.r), or_now(euid, n.e), or_now(suid, n.s)}; },
                [=] { return real().setresuid(ruid, euid, suid); });
}
