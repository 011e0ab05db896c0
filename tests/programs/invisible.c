/* What a program does that an agent must not disturb (test_invisible.py):
     closefds FILE   close 3-1023, then write lines of its own to FILE while allocating
     seccomp         forbid open/openat to every thread (SIGSYS), then allocate for a while
     strict          start a thread, then allow every thread only the calls a strict sandbox
                     would (read/write, futex, clocks, memory, exit), kill on any other; allocate
     openloop N      open and close /dev/null N times; print how many failed
     dup1 MS [T]     close(1); dup(fd) for MS milliseconds (T idle threads beside); report on
                     stderr how often dup was not 1
     smallfork       fork from a thread with a 16 KiB stack; the child allocates
     crash MODE N    allocate N blocks of 100 bytes, then: segv, abort, kill (SIGSEGV sent), own (own handler)
     confine DIR     chroot(DIR), setuid(nobody), allocate 1000 blocks, exit 0
     blockread N     twice: allocate N blocks of 100 bytes, print "ready", block in read(0)
     threads N       start N threads that end at once, join them; fork a child that allocates; print "done"
     tasks           print the entries of /proc/self/task, then "done"
     contained CMD.. run CMD under a filter that allows everything but unshare (EPERM), as a
                     container runtime or a hardened service manager leaves a program
     handoff MS      start a thread, put /dev/null on stdout and stderr, live MS more milliseconds
     cancelfirst     cancel the first thread at once (its routine has no cancellation point);
                     print what join got
     pinned          start a first thread pinned to the last CPU; print "ready", live 2 s
     sigfork N       fork N times from a SIGALRM handler that interrupts a malloc and free loop;
                     each child returns into what was interrupted, frees, exits; print how many
                     children a signal killed
     nofallocate HOW forbid fallocate (kill), through syscall() (HOW=libc) or a raw system call
                     (HOW=raw), before allocating anything; then keep 16 MiB in 4 KiB blocks,
                     print "ready", block in read(0)
     daemon IN OUT   allocate 20 MB in mixed sizes, open /dev/null and print its number, close
                     every descriptor above stderr, open IN and OUT, allocate from deep frames, copy
                     IN to OUT and print what was read
     altstack        a handler on an alternate stack of SIGSTKSZ (8 KiB) allocates 6000 bytes,
                     3000 times
     rawfork N       fork with _Fork (no atfork handlers); the child keeps N blocks and exits
   crash modes also: sigkill (the process kills itself with SIGKILL)
   Each prints "done" on success. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <alloca.h>
#include <unistd.h>

void* volatile keep[100000];  /* blockread uses two halves */
int* volatile nowhere;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void churn(double seconds) {
    for (double end = now() + seconds; now() < end;) {
        for (int i = 0; i < 100; ++i) free(malloc(64 + i));
        usleep(1000);
    }
}

static int closefds(const char* path) {
    for (int fd = 3; fd < 1024; ++fd) close(fd);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return perror("open"), 1;
    for (double end = now() + 0.5; now() < end;) {
        if (write(fd, "mine\n", 5) != 5) return 1;
        churn(0.005);
    }
    close(fd);
    puts("done");
    return 0;
}

static int confine_seccomp(void) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_open, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_openat, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return perror("prctl"), 1;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
        return perror("seccomp"), 1;
    churn(0.5);
    puts("done");
    return 0;
}

/* A sandbox that forbids what reserves tmpfs pages, installed before the
   first heap sample: the agent reserves what it will need before a filter it
   sees coming (libc's syscall()), and stays away from fallocate after one it
   cannot see (a raw system call). */
static int no_fallocate(const char* how) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fallocate, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return perror("prctl"), 1;
    long rc;
    if (!strcmp(how, "raw")) {
        __asm__ volatile("syscall"
                         : "=a"(rc)
                         : "a"((long)SYS_seccomp), "D"((long)SECCOMP_SET_MODE_FILTER), "S"(0L), "d"(&prog)
                         : "rcx", "r11", "memory");
    } else {
        rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
    }
    if (rc != 0) return fprintf(stderr, "seccomp: %ld\n", rc), 1;
    for (int i = 0; i < 4096; ++i) keep[i] = malloc(4096);
    puts("ready");
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {
    }
    for (int i = 0; i < 4096; ++i) free(keep[i]);
    puts("done");
    return 0;
}

/* What a strict sandbox leaves (sshd's preauth child, a renderer): I/O on
   descriptors already open, futex, clocks, memory, sleep and exit. glibc's
   malloc, free and usleep need nothing else. */
static const int strict_allowed[] = {
    __NR_read, __NR_pread64, __NR_write, __NR_futex, __NR_clock_gettime, __NR_clock_nanosleep,
    __NR_nanosleep, __NR_mmap, __NR_munmap, __NR_mprotect, __NR_madvise, __NR_brk,
    __NR_rt_sigprocmask, __NR_exit, __NR_exit_group,
};

static void* strict_worker(void* arg) {
    churn(*(double*)arg);
    return NULL;
}

static int confine_strict(void) {
    enum { kAllowed = sizeof strict_allowed / sizeof strict_allowed[0] };
    struct sock_filter f[kAllowed + 3];
    f[0] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (int i = 0; i < kAllowed; ++i)
        f[1 + i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, strict_allowed[i], kAllowed - i, 0);
    f[kAllowed + 1] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    f[kAllowed + 2] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {kAllowed + 3, f};
    double seconds = 1.0;
    pthread_t t;
    if (pthread_create(&t, NULL, strict_worker, &seconds) != 0) return perror("pthread_create"), 1;
    usleep(100000);  /* the agent has seen the thread start */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return perror("prctl"), 1;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
        return perror("seccomp"), 1;
    churn(seconds);
    pthread_join(t, NULL);
    if (write(1, "done\n", 5) != 5) return 1;
    return 0;
}

static int openloop(long n) {
    long failed = 0;
    for (long i = 0; i < n; ++i) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0) ++failed;
        else close(fd);
    }
    printf("failures=%ld\ndone\n", failed);
    return 0;
}

static void* idle(void* arg) {
    pause();
    return arg;
}

static int dup1(int ms, int threads) {
    for (int i = 0; i < threads; ++i) {
        pthread_t t;
        if (pthread_create(&t, NULL, idle, NULL) != 0) return perror("pthread_create"), 1;
    }
    int fd = open("/dev/null", O_WRONLY);
    long rounds = 0, surprised = 0;
    for (double end = now() + ms / 1000.0; now() < end; ++rounds) {
        close(1);
        int got = dup(fd);
        if (got != 1) {
            ++surprised;
            if (got >= 0) close(got);
            dup2(fd, 1);
        }
        free(malloc(32));
    }
    dprintf(2, "rounds=%ld surprised=%ld\n", rounds, surprised);
    return 0;
}

static void* fork_on_small_stack(void* arg) {
    (void)arg;
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 1000; ++i) keep[i] = malloc(100);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return (void*)(long)status;
}

static int smallfork(void) {
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 16384);
    pthread_t t;
    if (pthread_create(&t, &a, fork_on_small_stack, NULL) != 0) return 1;
    void* status;
    pthread_join(t, &status);
    printf("child=%ld\ndone\n", (long)status);
    return 0;
}

static void own_handler(int sig) {
    (void)sig;
    static const char msg[] = "own handler\n";
    (void)!write(1, msg, sizeof msg - 1);
    _exit(42);
}

static int crash(const char* mode, int n) {
    for (int i = 0; i < n && i < 100000; ++i) keep[i] = malloc(100);
    fflush(stdout);
    if (!strcmp(mode, "segv")) *nowhere = 1;
    if (!strcmp(mode, "abort")) abort();
    if (!strcmp(mode, "kill")) kill(getpid(), SIGSEGV);
    if (!strcmp(mode, "sigkill")) kill(getpid(), SIGKILL);
    if (!strcmp(mode, "own")) {
        signal(SIGSEGV, own_handler);
        *nowhere = 1;
    }
    return 3;
}

static int confine(const char* dir) {
    if (chroot(dir) != 0 || chdir("/") != 0) return perror("chroot"), 1;
    if (setgid(65534) != 0 || setuid(65534) != 0) return perror("setuid"), 1;
    for (int i = 0; i < 1000; ++i) keep[i] = malloc(100);
    puts("done");
    return 0;
}

static int blockread(int n) {
    char c;
    for (int round = 0; round < 2; ++round) {
        for (int i = 0; i < n && i < 50000; ++i) keep[round * 50000 + i] = malloc(100);
        printf("ready\n");
        fflush(stdout);
        if (read(0, &c, 1) < 0) return 1;
    }
    return 0;
}

/* Ends at once: under a tight RLIMIT_NPROC, the program's thread may be
   gone before the agent's could start in its place. */
static void* quick(void* arg) { return arg; }

static int threads(int n) {
    pthread_t t[64];
    for (int i = 0; i < n && i < 64; ++i)
        if (pthread_create(&t[i], NULL, quick, NULL) != 0) return perror("pthread_create"), 1;
    for (int i = 0; i < n && i < 64; ++i) pthread_join(t[i], NULL);
    pid_t pid = fork();
    if (pid < 0) return perror("fork"), 1;
    if (pid == 0) {
        for (int i = 0; i < 100; ++i) keep[i] = malloc(100);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("child=%d\ndone\n", status);
    return 0;
}

static int contained(char** argv) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_unshare, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return perror("prctl"), 1;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return perror("seccomp"), 1;
    execv(argv[0], argv);
    return perror("execv"), 127;
}

/* A program that hands its stdio over (daemons, `cmd 2>&1 | ...`): the
   reader of its old stderr sees EOF at once, while it lives on. */
static int handoff(int ms) {
    pthread_t t;
    if (pthread_create(&t, NULL, idle, NULL) != 0) return perror("pthread_create"), 1;
    usleep(100000);
    int null = open("/dev/null", O_WRONLY);
    if (null < 0 || dup2(null, 1) != 1 || dup2(null, 2) != 2) return 1;
    close(null);
    churn(ms / 1000.0);
    return 0;
}

static int tasks(void) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task");
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return 1;
    char buf[4096];
    long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    for (long off = 0; off < n;) {
        unsigned short reclen;
        memcpy(&reclen, buf + off + 16, sizeof reclen);
        const char* name = buf + off + 19;
        if (name[0] != '.') printf("%s\n", name);
        off += reclen;
    }
    close(fd);
    puts("done");
    return 0;
}

static void* forty_two(void* arg) {
    (void)arg;
    return (void*)42;
}

/* A cancel sent at once is pending when the routine starts: the routine
   still runs, and returns, since it reaches no cancellation point. */
static int cancelfirst(void) {
    pthread_t t;
    void* ret;
    if (pthread_create(&t, NULL, forty_two, NULL) != 0) return perror("pthread_create"), 1;
    pthread_cancel(t);
    pthread_join(t, &ret);
    printf("join got %s\n", ret == PTHREAD_CANCELED ? "canceled" : ret == (void*)42 ? "42" : "?");
    return 0;
}

static void* two_seconds(void* arg) {
    sleep(2);
    return arg;
}

/* A worker of its own on one CPU, as latency-minded programs pin them. */
static int pinned(void) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    cpu_set_t all, one;
    if (sched_getaffinity(0, sizeof all, &all) != 0) return perror("sched_getaffinity"), 1;
    int last = -1;
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &all)) last = c;
    CPU_ZERO(&one);
    CPU_SET(last, &one);
    pthread_attr_setaffinity_np(&attr, sizeof one, &one);
    pthread_t t;
    if (pthread_create(&t, &attr, two_seconds, NULL) != 0) return perror("pthread_create"), 1;
    printf("ready\n");
    fflush(stdout);
    pthread_join(t, NULL);
    return 0;
}

static volatile sig_atomic_t in_child, forks;

static void fork_on_alarm(int sig) {
    (void)sig;
    if (in_child) return;
    const int saved = errno;
    const pid_t pid = fork();  /* async-signal-safe in POSIX.1-2008 */
    if (pid == 0) in_child = 1;
    else if (pid > 0) forks++;
    errno = saved;
}

/* The child resumes inside whatever the signal interrupted: often a hook,
   holding what the parent's thread held there. */
static void churn_blocks(int n) {
    static void* ring[256];
    for (int i = 0; i < n; ++i) {
        free(ring[i & 255]);
        ring[i & 255] = malloc(16 + (size_t)(i * 7919) % 2000);
    }
}

/* Frames of 16 KiB each, as an interpreter's or a parser's might be. */
static void deep_alloc(int depth) {
    volatile char* pad = alloca(16384);
    pad[0] = 1;
    if (depth) deep_alloc(depth - 1);
    else churn_blocks(5000);
    pad[1] = 2;
}

static int daemon_files(const char* in_path, const char* out_path) {
    churn_blocks(20000);
    const int first = open("/dev/null", O_RDONLY);
    for (int fd = 3; fd < 1024; ++fd) close(fd);
    const int in = open(in_path, O_RDONLY), out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    for (int d = 0; d < 20; ++d) deep_alloc(d);
    char buf[256];
    const ssize_t n = read(in, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    if (n > 0 && write(out, buf, (size_t)n) != n) return 1;
    printf("first %d, in %d, out %d, read %zd: %s", first, in, out, n, buf);
    puts("done");
    return 0;
}

static void alt_handler(int sig) {
    (void)sig;
    void* volatile p = malloc(6000);
    free(p);
}

static int altstack(void) {
    /* A page no one may touch below the stack: overflowing it faults. */
    char* m = mmap(NULL, 4096 + 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || mprotect(m, 4096, PROT_NONE) != 0) return 1;
    stack_t ss = {.ss_sp = m + 4096, .ss_size = 8192, .ss_flags = 0};
    struct sigaction sa = {.sa_handler = alt_handler, .sa_flags = SA_ONSTACK};
    if (sigaltstack(&ss, NULL) != 0 || sigaction(SIGUSR1, &sa, NULL) != 0) return 1;
    for (int i = 0; i < 3000; ++i) raise(SIGUSR1);
    puts("done");
    return 0;
}

static int rawfork(int n) {
    void* volatile mine = malloc(100);
    const pid_t pid = _Fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        for (int i = 0; i < n; ++i) {
            void* volatile kept = malloc(32);
            (void)kept;
        }
        exit(0);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
    free(mine);
    puts("done");
    return 0;
}

static int sigfork(int n) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fork_on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    sigset_t alarm;
    sigemptyset(&alarm);
    sigaddset(&alarm, SIGALRM);
    const struct itimerval every = {{0, 2000}, {0, 2000}}, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &every, NULL);
    int killed = 0;
    for (unsigned i = 0;; ++i) {
        void* p = malloc(i % 2 ? 24 : 2000);
        if (in_child) {
            free(p);
            _exit(0);
        }
        free(p);
        sigprocmask(SIG_BLOCK, &alarm, NULL);
        if (in_child) _exit(0);  /* forked after the check above: no more now */
        const int done = forks >= n;
        if (done) setitimer(ITIMER_REAL, &off, NULL);
        int status;
        while (waitpid(-1, &status, done ? 0 : WNOHANG) > 0) killed += WIFSIGNALED(status);
        if (done) break;
        sigprocmask(SIG_UNBLOCK, &alarm, NULL);
    }
    printf("killed=%d\ndone\n", killed);
    return 0;
}

int main(int argc, char** argv) {
    const char* m = argc > 1 ? argv[1] : "";
    if (!strcmp(m, "closefds") && argc > 2) return closefds(argv[2]);
    if (!strcmp(m, "seccomp")) return confine_seccomp();
    if (!strcmp(m, "strict")) return confine_strict();
    if (!strcmp(m, "nofallocate") && argc > 2) return no_fallocate(argv[2]);
    if (!strcmp(m, "openloop") && argc > 2) return openloop(atol(argv[2]));
    if (!strcmp(m, "dup1") && argc > 2) return dup1(atoi(argv[2]), argc > 3 ? atoi(argv[3]) : 0);
    if (!strcmp(m, "smallfork")) return smallfork();
    if (!strcmp(m, "crash") && argc > 3) return crash(argv[2], atoi(argv[3]));
    if (!strcmp(m, "confine") && argc > 2) return confine(argv[2]);
    if (!strcmp(m, "blockread") && argc > 2) return blockread(atoi(argv[2]));
    if (!strcmp(m, "threads") && argc > 2) return threads(atoi(argv[2]));
    if (!strcmp(m, "tasks")) return tasks();
    if (!strcmp(m, "contained") && argc > 2) return contained(argv + 2);
    if (!strcmp(m, "handoff") && argc > 2) return handoff(atoi(argv[2]));
    if (!strcmp(m, "cancelfirst")) return cancelfirst();
    if (!strcmp(m, "pinned")) return pinned();
    if (!strcmp(m, "sigfork") && argc > 2) return sigfork(atoi(argv[2]));
    if (!strcmp(m, "daemon") && argc > 3) return daemon_files(argv[2], argv[3]);
    if (!strcmp(m, "altstack")) return altstack();
    if (!strcmp(m, "rawfork") && argc > 2) return rawfork(atoi(argv[2]));
    fprintf(stderr, "usage: invisible closefds FILE | seccomp | strict | openloop N | dup1 MS | smallfork | crash MODE N | "
                    "confine DIR | nofallocate libc|raw | blockread N | threads N | tasks | contained CMD... | handoff MS | cancelfirst | "
                    "pinned | sigfork N | daemon IN OUT | altstack | rawfork N\n");
    return 2;
}
