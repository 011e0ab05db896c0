/* Confines itself to an allowlist: what the program needs plus what the agent
   promises to limit itself to (read/pread/write, futex, clock_gettime,
   mmap/munmap); every other system call fails with EPERM (SC_ERRNO=1) or traps.
   Run under strace -f to list the agent's calls beyond that set. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

static void on_sys(int sig, siginfo_t* si, void* uc_) {
    (void)sig; (void)si;
    ((ucontext_t*)uc_)->uc_mcontext.gregs[REG_RAX] = -EPERM;
}
static const int allow[] = {SYS_read, SYS_pread64, SYS_write, SYS_futex, SYS_clock_gettime, SYS_mmap, SYS_munmap,
    SYS_exit, SYS_exit_group, SYS_brk, SYS_mprotect, SYS_madvise, SYS_rt_sigreturn, SYS_rt_sigprocmask,
    SYS_clone, SYS_clone3, SYS_set_robust_list, SYS_rseq, SYS_clock_nanosleep, SYS_nanosleep, SYS_sched_yield,
    SYS_rt_sigaction, SYS_getrandom};
static void* worker(void* a) {
    for (int r = 0; r < 200; ++r) {
        for (int i = 0; i < 100; ++i) { void* volatile p = malloc(64 + i); free(p); }
        struct timespec t = {0, 1000000};
        nanosleep(&t, 0);
    }
    return a;
}
int main(int argc, char** argv) {
    int nthreads = argc > 1 ? atoi(argv[1]) : 4;
    struct sigaction sa = {0};
    sa.sa_sigaction = on_sys;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &sa, 0);
    size_t n = sizeof allow / sizeof allow[0], k = 0;
    struct sock_filter f[64];
    f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (size_t i = 0; i < n; ++i)
        f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, allow[i], (unsigned)(n - i), 0);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, getenv("SC_ERRNO") ? (SECCOMP_RET_ERRNO | EPERM) : SECCOMP_RET_TRAP);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {k, f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) return perror("prctl"), 1;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog)) return perror("seccomp"), 1;
    pthread_t t[64];
    for (int i = 0; i < nthreads && i < 64; ++i) pthread_create(&t[i], 0, worker, 0);
    worker(0);
    for (int i = 0; i < nthreads && i < 64; ++i) pthread_join(t[i], 0);
    puts("done");
    return 0;
}
