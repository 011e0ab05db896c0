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

#include "kept_file.h"
#include "publisher.h"
#include "real.h"

#define GOMETRICS_EXPORT extern "C" [[gnu::visibility("default")]]

namespace gometrics::agent {
namespace {

// glibc's syscall(), done here: the hook must not depend on resolving the
// real one (the agent itself calls syscall() during its own start-up).
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
    sys::set_confined(true);
    publisher_before_confinement();
    errno = saved_errno;
}

// The filter was refused: unless an earlier one holds (the next snapshot
// reads status), the agent's calls are its own again.
void after_failed_filter() noexcept { sys::set_confined(false); }

void before_uid_change(uid_t euid) noexcept {
    if (euid == static_cast<uid_t>(-1)) return;
    const int saved_errno = errno;
    publisher_before_uid_change(euid);
    errno = saved_errno;
}

}  // namespace
}  // namespace gometrics::agent

using namespace gometrics::agent;

static_assert(sizeof(long) == 8, "forward() is the x86-64 system call convention");

GOMETRICS_EXPORT long syscall(long nr, ...) noexcept {
    va_list ap;
    va_start(ap, nr);
    // Six words, as glibc's own syscall() takes: unused ones are harmless.
    const long a = va_arg(ap, long), b = va_arg(ap, long), c = va_arg(ap, long);
    const long d = va_arg(ap, long), e = va_arg(ap, long), f = va_arg(ap, long);
    va_end(ap);
    if (nr != SYS_seccomp || (a != SECCOMP_SET_MODE_FILTER && a != SECCOMP_SET_MODE_STRICT))
        return forward(nr, a, b, c, d, e, f);
    before_filter();
    const long ret = forward(nr, a, b, c, d, e, f);
    if (ret == -1) after_failed_filter();
    return ret;
}

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
GOMETRICS_EXPORT int setuid(uid_t uid) noexcept {
    before_uid_change(uid);
    return real().setuid(uid);
}

GOMETRICS_EXPORT int seteuid(uid_t euid) noexcept {
    before_uid_change(euid);
    return real().seteuid(euid);
}

GOMETRICS_EXPORT int setreuid(uid_t ruid, uid_t euid) noexcept {
    before_uid_change(euid);
    return real().setreuid(ruid, euid);
}

GOMETRICS_EXPORT int setresuid(uid_t ruid, uid_t euid, uid_t suid) noexcept {
    before_uid_change(euid);
    return real().setresuid(ruid, euid, suid);
}
