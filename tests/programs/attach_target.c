/* A program to attach to mid-run (test_attach.py). Before any attach it
   allocates 500 blocks of its own, then reads commands from stdin, blocked
   in read() (a read that fails with EINTR is reported, exit 3):
     work   1000 mallocs, 500 of them freed; the first time, the 200 oldest
            blocks freed and 100 more reallocated; 10 callocs, 10 posix_memaligns, 10 large
            blocks of which 5 freed. Prints the live bytes of what it still
            holds from this command (malloc_usable_size).
     free   frees everything "work" kept.
     fork   forks a child that makes 10 mallocs, prints its pid and waits.
     plugin PATH N   dlopens PATH and has it make N mallocs (attach_plugin.c).
     unplug          has it free them.
     thread starts a thread and joins it.
     dup    100,000 strdup and free pairs: blocks libc allocates itself.
     mixed  frees every other one of the mixed blocks from before the attach
            (argv[1] of them, sizes as a realistic churn draws them: 70%
            16-128 B, 25% up to 1 KiB, 5% up to 8 KiB) and allocates as many
            anew.
     unmix  frees every mixed block.
            Both print "inuse A" with A the allocator's own in-use figure
            (jemalloc's stats.allocated less its thread caches' bytes when
            its mallctl is there, else glibc's mallinfo2 uordblks + hblkhd).
     confine HOW  installs filter HOW (below) on every thread, the agent's
            too (TSYNC), as a server that sandboxes itself once running.
     grow   2,000 rounds of blocks grown by realloc (100 to 300 to 3,000
            bytes), each checked: malloc_usable_size at least what was
            asked, every byte kept. Prints "grew BAD", BAD the rounds that
            failed (with GOMETRICS_PROFILE_RATE=1 every block is sampled).
     quit   exits 0.
   With ATTACH_TARGET_MLOCKALL set it locks its memory first, now and to
   come (mlockall), as latency-bound servers do.
   ATTACH_TARGET_SECCOMP confines it after start-up, as sandboxed servers
   are: "kill-openat" kills the process at openat (attach must refuse);
   "allowlist" kills it at any call but the few it makes itself and those
   attaching makes (ipc/attach_syscalls.h): attach, work and detach must
   all pass under it. "eperm-unlink" fails unlink and unlinkat with EPERM,
   as container profiles answer what they forbid; "eperm-fallocate" so
   fails fallocate, which the agent's segment needs; "kill-restart" kills
   at restart_syscall, which a sleep stopped by a tracer resumes through.
   "detach-allowlist" kills it at any call but those detach makes
   (ipc/attach_syscalls.h) and read, write and exit_group.
   "prctl-rules" answers 40 prctl options with EPERM, rule after rule.
   With ATTACH_TARGET_SLEEPER a second thread serves the commands, and the
   main thread (the one the CLI stops first) sleeps 20 ms at a time.
   Output goes through write(): stdio would allocate inside libc. */
#include <dlfcn.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static void* volatile old_blocks[500];
static void** mixed_old;
static void** mixed_new;
static long nmixed;
static unsigned long long rng = 88172645463325252ull;
static void* volatile kept[2000];
static int nkept, old_done;
static void (*plugin_free)(void);

static void say(const char* s) {
    size_t n = strlen(s);
    while (n) {
        ssize_t w = write(1, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

static int read_line(char* buf, size_t cap) {
    size_t n = 0;
    for (;;) {
        char c;
        ssize_t r = read(0, &c, 1);
        if (r < 0 && errno == EINTR) {
            say("EINTR\n");
            _exit(3);
        }
        if (r <= 0) return -1;
        if (c == '\n') break;
        if (n + 1 < cap) buf[n++] = c;
    }
    buf[n] = 0;
    return (int)n;
}

static void keep(void* p) { kept[nkept++] = p; }

static void* nothing(void* arg) { return arg; }

static size_t mixed_size(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    const unsigned r = (unsigned)(rng % 100), x = (unsigned)(rng >> 32);
    if (r < 70) return 16 + x % 113;
    if (r < 95) return 129 + x % 896;
    return 1025 + x % 7168;
}

static size_t allocator_in_use(void) {
    int (*mallctl)(const char*, void*, size_t*, void*, size_t);
    *(void**)&mallctl = dlsym(RTLD_DEFAULT, "mallctl");
    if (mallctl) {
        unsigned long long epoch = 1;
        size_t allocated = 0, cached = 0, sz = sizeof epoch;
        mallctl("epoch", &epoch, &sz, &epoch, sz);
        sz = sizeof allocated;
        if (mallctl("stats.allocated", &allocated, &sz, NULL, 0) != 0) return 0;
        sz = sizeof cached;
        if (mallctl("stats.arenas.4096.tcache_bytes", &cached, &sz, NULL, 0) != 0) cached = 0;
        return allocated - cached;
    }
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

#include "attach_syscalls.h"

/* Appends to f at *n: allow each of the `count` calls. */
static void allow_each(struct sock_filter* f, unsigned* n, const int* calls, size_t count) {
    for (size_t i = 0; i < count; ++i) {
        f[(*n)++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)calls[i], 0, 1);
        f[(*n)++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    }
}

/* Installs filter HOW on the calling thread, or with tsync on every thread
   of the process (the agent's too); 0, or -1 with errno. */
static int confine_with(const char* how, int tsync) {
    static const int agent_calls[] = {
#define GOMETRICS_CALL(name) SYS_##name,
        GOMETRICS_ATTACH_SYSCALLS(GOMETRICS_CALL)
#undef GOMETRICS_CALL
    };
    static const int own_calls[] = {SYS_exit_group, SYS_wait4, SYS_getrandom};  /* malloc's first call */
    struct sock_filter f[256];
    unsigned n = 0;
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    if (!strcmp(how, "kill-restart")) {
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_restart_syscall, 0, 1);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    } else if (!strcmp(how, "eperm-fallocate")) {
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_fallocate, 0, 1);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    } else if (!strcmp(how, "eperm-unlink")) {
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_unlinkat, 1, 0);
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_unlink, 0, 1);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    } else if (!strcmp(how, "kill-openat")) {
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat, 0, 1);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    } else if (!strcmp(how, "detach-allowlist")) {
        static const int detach_calls[] = {
#define GOMETRICS_CALL(name) SYS_##name,
            GOMETRICS_DETACH_SYSCALLS(GOMETRICS_CALL)
#undef GOMETRICS_CALL
            SYS_read, SYS_write, SYS_exit_group};  /* its own, to be told to quit */
        allow_each(f, &n, detach_calls, sizeof detach_calls / sizeof *detach_calls);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    } else if (!strcmp(how, "prctl-rules")) {
        /* 40 prctl options answered EPERM, each compared as libseccomp
           compares a 64-bit argument (high word, then low word): every
           mismatch goes on to the next rule, so paths double at each. */
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_prctl, 1, 0);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
        for (unsigned i = 0; i < 40; ++i) {
            f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]) + 4);
            f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 3);
            f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
            f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x47000000u + i, 0, 1);
            f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
        }
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    } else {
        allow_each(f, &n, agent_calls, sizeof agent_calls / sizeof *agent_calls);
        allow_each(f, &n, own_calls, sizeof own_calls / sizeof *own_calls);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    }
    struct sock_fprog prog = {(unsigned short)n, f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, tsync ? SECCOMP_FILTER_FLAG_TSYNC : 0, &prog) == 0 ? 0 : -1;
}

static void confine(const char* how) {
    if (confine_with(how, 0) != 0) {
        perror("seccomp");
        exit(2);
    }
}

static int serve(void) {
    char line[4200], out[128];
    while (read_line(line, sizeof line) >= 0) {
        if (!strcmp(line, "work")) {
            void* a[1000];
            for (int i = 0; i < 1000; ++i) a[i] = malloc((size_t)(16 * (i % 64 + 1)));
            for (int i = 0; i < 1000; ++i) {
                if (i % 2) keep(a[i]);
                else free(a[i]);
            }
            if (!old_done) {  /* once: the blocks from before the attach */
                for (int i = 0; i < 200; ++i) free(old_blocks[i]);
                for (int i = 200; i < 300; ++i) keep(realloc(old_blocks[i], 300 + (size_t)i));
                old_done = 1;
            }
            for (int i = 0; i < 10; ++i) keep(calloc(3, 8));
            for (int i = 0; i < 10; ++i) {
                void* p = NULL;
                if (posix_memalign(&p, 64, 64) == 0) keep(p);
            }
            for (int i = 0; i < 10; ++i) {
                void* p = malloc(200000);
                if (i % 2) keep(p);
                else free(p);
            }
            size_t live = 0;
            for (int i = 0; i < nkept; ++i) live += malloc_usable_size(kept[i]);
            snprintf(out, sizeof out, "worked %zu\n", live);
            say(out);
        } else if (!strcmp(line, "grow")) {
            int bad = 0;
            for (int i = 0; i < 2000; ++i) {
                unsigned char* x = malloc(100);
                memset(x, 7, 100);
                unsigned char* y = realloc(x, 300);
                int ok = malloc_usable_size(y) >= 300;
                for (int k = 0; k < 100; ++k) ok &= y[k] == 7;
                memset(y, 9, 300);
                unsigned char* z = realloc(y, 3000);
                for (int k = 0; k < 300; ++k) ok &= z[k] == 9;
                bad += !ok;
                free(z);
            }
            snprintf(out, sizeof out, "grew %d\n", bad);
            say(out);
        } else if (!strcmp(line, "free")) {
            for (int i = 0; i < nkept; ++i) free(kept[i]);
            nkept = 0;
            say("freed\n");
        } else if (!strcmp(line, "fork")) {
            pid_t child = fork();
            if (child == 0) {  /* allocates, says so, and waits to be killed */
                for (int i = 0; i < 10; ++i) keep(malloc(100));
                snprintf(out, sizeof out, "child %d\n", (int)getpid());
                say(out);
                for (;;) pause();
            }
        } else if (!strncmp(line, "plugin ", 7)) {
            char path[4096];
            int n = 0;
            void* h = sscanf(line + 7, "%4095s %d", path, &n) == 2 ? dlopen(path, RTLD_NOW) : NULL;
            int (*alloc)(int) = NULL;
            if (h) *(void**)&alloc = dlsym(h, "attach_plugin_alloc");
            plugin_free = NULL;
            if (h) *(void**)&plugin_free = dlsym(h, "attach_plugin_free");
            snprintf(out, sizeof out, "plugged %d\n", alloc && plugin_free ? alloc(n) : -1);
            say(out);
        } else if (!strcmp(line, "unplug")) {
            if (plugin_free) plugin_free();
            say("unplugged\n");
        } else if (!strcmp(line, "mixed") || !strcmp(line, "unmix")) {
            const int all = !strcmp(line, "unmix");
            for (long i = 0; i < nmixed; ++i) {
                if (all || i % 2) {
                    free(mixed_old[i]);
                    mixed_old[i] = NULL;
                }
                if (all) {
                    free(mixed_new[i]);
                    mixed_new[i] = NULL;
                } else if (i % 2) {
                    mixed_new[i] = malloc(mixed_size());
                }
            }
            snprintf(out, sizeof out, "inuse %zu\n", allocator_in_use());
            say(out);
        } else if (!strcmp(line, "dup")) {
            for (int i = 0; i < 100000; ++i) free(strdup(line));
            say("duped\n");
        } else if (!strcmp(line, "thread")) {
            pthread_t t;
            say(pthread_create(&t, NULL, nothing, NULL) == 0 && pthread_join(t, NULL) == 0 ? "joined\n" : "no thread\n");
        } else if (!strncmp(line, "confine ", 8)) {
            say(confine_with(line + 8, 1) == 0 ? "confined\n" : "not confined\n");
        } else if (!strcmp(line, "quit")) {
            say("bye\n");
            return 0;
        }
    }
    return 0;
}

static volatile int served = -1;
static void* serve_thread(void* arg) {
    served = serve();
    return arg;
}

int main(int argc, char** argv) {
    char out[128];
    if (getenv("ATTACH_TARGET_MLOCKALL") && mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
        perror("mlockall");
        return 2;
    }
    if (getenv("ATTACH_TARGET_SECCOMP")) confine(getenv("ATTACH_TARGET_SECCOMP"));
    for (int i = 0; i < 500; ++i) old_blocks[i] = malloc(200);
    nmixed = argc > 1 ? atol(argv[1]) : 0;
    mixed_old = calloc((size_t)nmixed + 1, sizeof *mixed_old);
    mixed_new = calloc((size_t)nmixed + 1, sizeof *mixed_new);
    for (long i = 0; i < nmixed; ++i) mixed_old[i] = malloc(mixed_size());
    snprintf(out, sizeof out, "ready %d\n", (int)getpid());
    say(out);
    if (!getenv("ATTACH_TARGET_SLEEPER")) return serve();
    pthread_t server;
    if (pthread_create(&server, NULL, serve_thread, NULL) != 0) return 2;
    while (served < 0) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return served;
}
