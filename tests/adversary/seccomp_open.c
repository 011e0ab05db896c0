/* The issue's own seccomp filter (open/openat -> KILL_PROCESS, TSYNC), then
   the program allocates and, as asked: WITH_THREAD=1 starts and joins a
   thread; WITH_FORK=1 forks a child that allocates once; WITH_SEGV=1 then
   dies of SIGSEGV. Without the agent it
   always prints "done" and exits 0 (the child too). */
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/wait.h>
static void* work(void* a) { for (int i = 0; i < 1000; ++i) { void* volatile p = malloc(100); free(p); } return a; }
int main(void) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_open, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_openat, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog))
        return perror("seccomp"), 1;
    void* volatile q; for (int i = 0; i < 1000; ++i) { q = malloc(100); free(q); }
    if (getenv("WITH_FORK")) { pid_t c = fork(); if (c == 0) { void* volatile z = malloc(100); free(z); _exit(0); } int st; waitpid(c, &st, 0); if (st) { printf("child status %#x\n", st); return 3; } }
    if (getenv("WITH_THREAD")) { pthread_t t;
    pthread_create(&t, 0, work, 0);
    pthread_join(t, 0); }
    if (getenv("WITH_SEGV")) { fflush(stdout); *(volatile int*)0 = 1; }
    puts("done");
    return 0;
}
