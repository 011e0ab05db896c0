// pthread mutex and rwlock acquisition, interposed to time contention.
//
// The hint. Timing every acquisition would cost two clock reads per lock,
// and "try first, time on failure" costs a pthread_mutex_trylock, about
// three uncontended locks on glibc 2.36. Instead each hook
// peeks at the lock with one relaxed load before calling the real
// function (the owner's tid of most mutexes and of a default rwlock's
// writer, else the lock's state word; see held()): only when it says the
// lock is held does it take two
// CLOCK_MONOTONIC readings (vDSO, no syscall) around the real call and
// count the wait. The uncontended path is: load, compare, tail call.
//
// The real function does all the work, so every mutex type keeps its
// semantics and return codes exactly (recursive, error-checking, robust,
// priority-inheritance, process-shared, timed); the hint only decides
// whether to time. Its blind spots, all documented in docs/design.md:
// - a lock released between the peek and the real call is timed anyway
//   and counts a contention with a near-zero wait;
// - a lock taken by another thread just after the peek, or held with its
//   owner not yet recorded or already cleared (the few instructions after
//   glibc's acquisition and before its release, where the owner is read),
//   is a contention the hint misses (the wait is not counted);
// - an adaptive mutex that acquires while spinning counts a contention
//   with its short (spinning) wait, which is real waiting;
// - a robust mutex whose owner died reads as held (owner-died bit) and
//   counts a contention with a near-zero wait;
// - rwlocks: a reader is timed only when a writer owns the lock; readers
//   held back by queued writers (PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP)
//   are missed.
// A relock by the owner (recursive relock, EDEADLK) is not a contention:
// the owner's tid in the lock is compared with the caller's first.
#include <pthread.h>
#include <time.h>

#include "buckets.h"
#include "clocks.h"
#include "profile.h"
#include "real.h"
#include "slots.h"

#define GOMETRICS_EXPORT extern "C" [[gnu::visibility("default")]]

namespace gometrics::agent {
namespace {

// glibc's rwlock state word (nptl/pthread_rwlock_common.c): bit 0 is the
// write phase, bit 1 "a writer owns the lock or (in a read phase) wants
// it", bit 2 readers waiting, the reader count from bit 3 up.
constexpr unsigned kWrPhase = 1, kWrLocked = 2, kRWaiting = 4;

[[gnu::always_inline]] inline unsigned peek(const unsigned& w) noexcept { return __atomic_load_n(&w, __ATOMIC_RELAXED); }
[[gnu::always_inline]] inline int peek(const int& w) noexcept { return __atomic_load_n(&w, __ATOMIC_RELAXED); }
[[gnu::always_inline]] inline unsigned char peek(const unsigned char& w) noexcept {
    return __atomic_load_n(&w, __ATOMIC_RELAXED);
}

// Which word the hint reads. Loading the very word the real call is about to
// lock-cmpxchg cost 3.4 ns per lock on the x86 machine measured (18.0 ->
// 21.4 ns a lock+unlock pair); loading a neighbour of it, nothing
// measurable. So a mutex's hint is its owner's tid, which glibc records
// just after acquiring and clears just before releasing, wherever that is
// faithful: not where the lock passes to a waiter before the waiter runs
// and records itself (priority inheritance: the kernel hands it over), not
// for robust mutexes (a not-recoverable one keeps a nonzero owner while
// free), not under lock elision (owners are not recorded), nor for
// priority-protected ones. Those read the lock word, as before. glibc's
// flag bits in __kind (pthreadP.h, part of the ABI: they live in the
// program's memory): robust 16, priority inheritance 32, priority protect
// 64, elision 256 (set at the first lock when elision is forced).
constexpr int kMutexOwnerUnfaithful = 16 | 32 | 64 | 256;
[[gnu::always_inline]] inline bool held(const pthread_mutex_t* m) noexcept {
    if (peek(m->__data.__kind) & kMutexOwnerUnfaithful) [[unlikely]]
        return peek(m->__data.__lock) != 0;
    return peek(m->__data.__owner) != 0;
}
// A reader waits when a writer owns the lock. A reader-preferring rwlock
// (the default, __flags 0) records its writer's tid after acquiring and
// clears it first thing on release, and never hands the lock from writer to
// writer; the other kinds do hand over, so they read the state word: "write
// phase, and a writer owns it".
[[gnu::always_inline]] inline bool held_for_read(const pthread_rwlock_t* l) noexcept {
    if (peek(l->__data.__flags) != 0) [[unlikely]]
        return (peek(l->__data.__readers) & (kWrPhase | kWrLocked)) == (kWrPhase | kWrLocked);
    return peek(l->__data.__cur_writer) != 0;
}
// A writer waits when readers hold the lock or a writer owns or wants it.
[[gnu::always_inline]] inline bool held_for_write(const pthread_rwlock_t* l) noexcept {
    return (peek(l->__data.__readers) & ~(kWrPhase | kRWaiting)) != 0;
}

// Before the real functions are resolved (a lock taken by a constructor
// that runs before ours): resolve, then call.
template <auto Member, class... Args>
[[gnu::noinline, gnu::cold]] int resolve_and_call(Args... args) noexcept {
    return (real().*Member)(args...);
}

// The real call. The pointer is loaded anyway to call through it; null
// only before resolution. Both calls are tail calls: no frame.
template <auto Member, class... Args>
[[gnu::always_inline]] inline int forward(Args... args) noexcept {
    const auto f = __atomic_load_n(&(detail::g_real.*Member), __ATOMIC_RELAXED);
    if (!f) [[unlikely]]
        return resolve_and_call<Member>(args...);
    return f(args...);
}

// Not sys::clock_ns: its zeroed timespec would add stores to every timed wait.
uint64_t monotonic_ns() noexcept {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return sys::to_ns(ts);
}

void record_wait(ThreadSlot* s, uint64_t ns) noexcept {
    const size_t b = buckets::time_index(ns);
    if (!is_orphans(s)) [[likely]] {
        bump(s->wait_by_time[b], 1);
        bump(s->wait_ns, ns);
        bump(s->contentions, 1);
    } else {
        bump_shared(s->wait_by_time[b], 1);
        bump_shared(s->wait_ns, ns);
        bump_shared(s->contentions, 1);
    }
}

// The contended path: the real call, timed. `owner` is the tid the lock
// names as its owner (0 if none or unknown): the caller itself relocking
// is not waiting on anyone.
template <auto Member, class... Args>
[[gnu::noinline, gnu::cold]] int timed(int owner, Args... args) noexcept {
    const auto f = real().*Member;
    ThreadSlot* s = current_slot();
    if (!s || (owner != 0 && owner == s->tid)) return f(args...);
    const uint64_t t0 = monotonic_ns();
    const int rc = f(args...);  // whatever it returns (ETIMEDOUT too), the time was spent waiting
    const uint64_t waited = monotonic_ns() - t0;
    record_wait(s, waited);
    profile::sample_contention(waited);  // saves and restores errno
    return rc;
}

}  // namespace
}  // namespace gometrics::agent

using namespace gometrics::agent;
using R = RealFunctions;

GOMETRICS_EXPORT int pthread_mutex_lock(pthread_mutex_t* m) noexcept {
    if (held(m)) [[unlikely]]
        return timed<&R::pthread_mutex_lock>(peek(m->__data.__owner), m);
    return forward<&R::pthread_mutex_lock>(m);
}

GOMETRICS_EXPORT int pthread_mutex_timedlock(pthread_mutex_t* m, const timespec* abstime) noexcept {
    if (held(m)) [[unlikely]]
        return timed<&R::pthread_mutex_timedlock>(peek(m->__data.__owner), m, abstime);
    return forward<&R::pthread_mutex_timedlock>(m, abstime);
}

GOMETRICS_EXPORT int pthread_mutex_clocklock(pthread_mutex_t* m, clockid_t clock, const timespec* abstime) noexcept {
    if (held(m)) [[unlikely]]
        return timed<&R::pthread_mutex_clocklock>(peek(m->__data.__owner), m, clock, abstime);
    return forward<&R::pthread_mutex_clocklock>(m, clock, abstime);
}

GOMETRICS_EXPORT int pthread_rwlock_rdlock(pthread_rwlock_t* l) noexcept {
    if (held_for_read(l)) [[unlikely]]
        return timed<&R::pthread_rwlock_rdlock>(peek(l->__data.__cur_writer), l);
    return forward<&R::pthread_rwlock_rdlock>(l);
}

GOMETRICS_EXPORT int pthread_rwlock_timedrdlock(pthread_rwlock_t* l, const timespec* abstime) noexcept {
    if (held_for_read(l)) [[unlikely]]
        return timed<&R::pthread_rwlock_timedrdlock>(peek(l->__data.__cur_writer), l, abstime);
    return forward<&R::pthread_rwlock_timedrdlock>(l, abstime);
}

GOMETRICS_EXPORT int pthread_rwlock_clockrdlock(pthread_rwlock_t* l, clockid_t clock, const timespec* abstime) noexcept {
    if (held_for_read(l)) [[unlikely]]
        return timed<&R::pthread_rwlock_clockrdlock>(peek(l->__data.__cur_writer), l, clock, abstime);
    return forward<&R::pthread_rwlock_clockrdlock>(l, clock, abstime);
}

GOMETRICS_EXPORT int pthread_rwlock_wrlock(pthread_rwlock_t* l) noexcept {
    if (held_for_write(l)) [[unlikely]]
        return timed<&R::pthread_rwlock_wrlock>(peek(l->__data.__cur_writer), l);
    return forward<&R::pthread_rwlock_wrlock>(l);
}

GOMETRICS_EXPORT int pthread_rwlock_timedwrlock(pthread_rwlock_t* l, const timespec* abstime) noexcept {
    if (held_for_write(l)) [[unlikely]]
        return timed<&R::pthread_rwlock_timedwrlock>(peek(l->__data.__cur_writer), l, abstime);
    return forward<&R::pthread_rwlock_timedwrlock>(l, abstime);
}

GOMETRICS_EXPORT int pthread_rwlock_clockwrlock(pthread_rwlock_t* l, clockid_t clock, const timespec* abstime) noexcept {
    if (held_for_write(l)) [[unlikely]]
        return timed<&R::pthread_rwlock_clockwrlock>(peek(l->__data.__cur_writer), l, clock, abstime);
    return forward<&R::pthread_rwlock_clockwrlock>(l, clock, abstime);
}
