/* The system calls that attaching makes in the target, x86-64 names: the
   loader's dlopen of the agent, the agent's start and publisher thread, its
   hooks, its collectors, and detach. `attach` reads the target's seccomp
   filters and refuses when one would kill it at any of these; a test runs
   an attached process under an allowlist of exactly these, so that a call
   the agent starts making shows up there first. restart_syscall is the
   CLI's: a thread stopped in a timed sleep resumes through it. Plain C:
   the test programs include it too.

   The second list holds the calls that must be allowed outright: an errno
   there is not the agent's failure but the program's (a stopped sleep
   that returns it; glibc aborts when rseq or a futex call fails). */
#ifndef GOMETRICS_IPC_ATTACH_SYSCALLS_H
#define GOMETRICS_IPC_ATTACH_SYSCALLS_H

#define GOMETRICS_ATTACH_SYSCALLS(X)                                                                  \
    X(read) X(write) X(pread64) X(openat) X(close) X(close_range) X(newfstatat) X(lseek) X(getdents64) \
    X(fcntl) X(ftruncate) X(fallocate) X(unlinkat) X(unlink) X(rename) X(readlink) X(pipe2) X(fchown) \
    X(brk) X(mmap) X(mprotect) X(munmap) X(madvise) X(mincore) X(munlock)                            \
    X(futex) X(clock_gettime) X(clock_nanosleep)                                       \
    X(clone) X(clone3) X(set_robust_list) X(rseq) X(rt_sigprocmask) X(rt_sigaction) X(prctl) X(exit) \
    X(getpid) X(gettid) X(geteuid) X(getresuid) X(tgkill) X(pidfd_open) X(pidfd_getfd) X(prlimit64)   \
    X(getrusage) X(sched_getaffinity) X(sched_getparam) X(sched_getscheduler) X(restart_syscall)

#define GOMETRICS_ATTACH_MUST_ALLOW(X) X(restart_syscall) X(rseq) X(futex)

/* What detach makes, whatever the program did since the attach: taking the
   calls back, stopping the publisher thread (which ends the snapshot it is
   in, on its own thread, and exits), closing the agent's descriptors and
   giving back the map's pages. No snapshot on the borrowed thread, no
   unlink (the CLI removes the segment). The publisher thread's filters are
   the attach's, or newer ones every thread has (a filter reaches another
   thread only by TSYNC): the agent sees those, and its snapshots then only
   read the files it keeps (pread64, newfstatat and lseek to check them,
   prctl when it cannot read its status). So `detach` checks the filters
   against this list. */
#define GOMETRICS_DETACH_SYSCALLS(X)                                                                 \
    X(pread64) X(newfstatat) X(lseek) X(prctl) X(close) X(mprotect) X(madvise) X(munmap) X(futex)    \
    X(clock_gettime) X(rt_sigprocmask) X(exit) X(restart_syscall)

#endif
