// Clocks in nanoseconds: the one conversion from the kernel's timespec,
// timeval and clock ticks. Inline: the lock hooks time contended waits.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

namespace gometrics::sys {

inline constexpr uint64_t kNsPerSec = 1000000000;

constexpr uint64_t to_ns(const timespec& t) noexcept { return uint64_t(t.tv_sec) * kNsPerSec + uint64_t(t.tv_nsec); }
constexpr uint64_t to_ns(const timeval& t) noexcept { return uint64_t(t.tv_sec) * kNsPerSec + uint64_t(t.tv_usec) * 1000; }

// The clock's time now (0 if the clock is not there: never on Linux).
inline uint64_t clock_ns(clockid_t c) noexcept {
    timespec ts{};
    clock_gettime(c, &ts);
    return to_ns(ts);
}

// Sleeps about ns nanoseconds: a futex wait that nothing wakes. The system
// call itself, not libc's nanosleep, which is a cancellation point: the agent
// waits inside the program's malloc and lock calls, where a pending cancel
// must not act. And futex, not a sleep: the one blocking call a confined
// program's filter must allow the agent (glibc aborts without it), and on
// detach's short list.
inline void pause_ns(uint64_t ns) noexcept {
    static constinit uint32_t never_woken = 0;
    const timespec ts{static_cast<time_t>(ns / kNsPerSec), static_cast<long>(ns % kNsPerSec)};
    const int saved_errno = errno;  // ETIMEDOUT, or a signal's EINTR: not the program's
    (void)syscall(SYS_futex, &never_woken, FUTEX_WAIT_PRIVATE, 0, &ts, nullptr, 0);
    errno = saved_errno;
}

// How long the agent waits between looks at another thread's one-time work
// (a start-up, a first sample's tables): a sleep, not sched_yield, which a
// strict sandbox's allowlist may kill on.
inline constexpr uint64_t kWaitNs = 50000;

// Takes a flag that running threads hold for a few stores, trying again
// every millisecond; false after `limit_ms` tries (never, if negative). The
// wait is pause_ns: no cancellation point.
inline bool take_flag(std::atomic<bool>& flag, int limit_ms) noexcept {
    for (int waited_ms = 0; flag.exchange(true, std::memory_order_acquire); ++waited_ms) {
        if (waited_ms == limit_ms) return false;
        pause_ns(1000000);
    }
    return true;
}

// Clock ticks (USER_HZ, the unit of /proc/PID/stat's times) in nanoseconds.
inline uint64_t ticks_to_ns(uint64_t ticks) noexcept {
    const long hz = sysconf(_SC_CLK_TCK);
    return ticks * (kNsPerSec / uint64_t(hz > 0 ? hz : 100));
}

}  // namespace gometrics::sys
