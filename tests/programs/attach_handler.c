/* A program whose only thread is held inside a signal handler that
   interrupted libc (most often its malloc or free, which may hold the
   allocator's lock), for test_attach.py: attach must find no safe point
   there and give up, changing nothing. It allocates and frees under a
   profiling timer until the handler catches it inside libc; the handler
   then prints "held" and blocks in read() on stdin until a line comes. Then
   the timer stops, and it prints "done" and exits 0. A second thread waits
   all along for a priority-inheritance mutex the main thread holds: with it
   glibc's malloc takes its arena's lock, so borrowing the held thread to
   call dlopen (which allocates) would deadlock on it; and it waits in a
   system call attach does not borrow a thread from (FUTEX_LOCK_PI), so no
   thread is at a safe point. Only the main thread takes SIGPROF. */
#define _GNU_SOURCE
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <ucontext.h>
#include <unistd.h>

static uintptr_t libc_lo, libc_hi;
static volatile sig_atomic_t held;

static int find_libc(struct dl_phdr_info* info, size_t size, void* data) {
    (void)size, (void)data;
    if (!info->dlpi_name || !strstr(info->dlpi_name, "/libc.so.6")) return 0;
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)* ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            libc_lo = info->dlpi_addr + ph->p_vaddr;
            libc_hi = libc_lo + ph->p_memsz;
        }
    }
    return 1;
}

static void on_prof(int sig, siginfo_t* info, void* ctx) {
    (void)sig, (void)info;
    const uintptr_t ip = (uintptr_t)((ucontext_t*)ctx)->uc_mcontext.gregs[REG_RIP];
    if (held || ip < libc_lo || ip >= libc_hi) return;
    held = 1;
    (void)!write(1, "held\n", 5);
    char c;
    while (read(0, &c, 1) == 1 && c != '\n') {
    }
}

static pthread_mutex_t pi;

static void* wait_for_pi(void* arg) {
    pthread_mutex_lock(&pi);
    return arg;
}

int main(void) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
    pthread_mutex_init(&pi, &attr);
    pthread_mutex_lock(&pi);
    /* The waiter never takes SIGPROF: caught in its futex call (in libc too)
       it would hold the handler while the main thread ran on and exited. */
    sigset_t prof, old;
    sigemptyset(&prof);
    sigaddset(&prof, SIGPROF);
    pthread_sigmask(SIG_BLOCK, &prof, &old);
    pthread_t waiter;
    if (pthread_create(&waiter, NULL, wait_for_pi, NULL) != 0) return 2;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    dl_iterate_phdr(find_libc, NULL);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_prof;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGPROF, &sa, NULL);
    struct itimerval every = {{0, 200}, {0, 200}}, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &every, NULL);
    void* blocks[64] = {0};
    unsigned seed = 1;
    while (!held)
        for (int i = 0; i < 64; ++i) {
            seed = seed * 1103515245u + 12345u;
            free(blocks[i]);
            blocks[i] = malloc(16 + (seed >> 16) % 4000);
        }
    setitimer(ITIMER_PROF, &off, NULL);
    for (int i = 0; i < 64; ++i) free(blocks[i]);
    (void)!write(1, "done\n", 5);
    return 0;
}
