/* malloc and free in a SIGALRM handler (every 100 us) while the main loop
 * allocates and frees, for any allocator: the handler allocates only when
 * it interrupted the program's own code or the agent's, never the
 * allocator's (which no allocator allows). What it frees lands between any
 * two instructions of a hook. Everything is freed at the end; prints the
 * handler's count. argv[1] = 0: the twin, no loop. */
#define _GNU_SOURCE
#include <link.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>

static struct { uintptr_t lo, hi; } code[16];
static int ranges;
static volatile long handled;
static void* kept[64];
static unsigned seed = 1;

static int find_code(struct dl_phdr_info* info, size_t size, void* data) {
    (void)size, (void)data;
    if (info->dlpi_name[0] && !strstr(info->dlpi_name, "libgometrics")) return 0;
    for (int i = 0; i < info->dlpi_phnum && ranges < 16; ++i)
        if (info->dlpi_phdr[i].p_type == PT_LOAD && (info->dlpi_phdr[i].p_flags & PF_X)) {
            code[ranges].lo = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
            code[ranges].hi = code[ranges].lo + info->dlpi_phdr[i].p_memsz;
            ++ranges;
        }
    return 0;
}

static void on_alarm(int sig, siginfo_t* info, void* context) {
    (void)sig, (void)info;
    const uintptr_t pc = (uintptr_t)((ucontext_t*)context)->uc_mcontext.gregs[REG_RIP];
    int ours = 0;
    for (int i = 0; i < ranges; ++i) ours |= pc >= code[i].lo && pc < code[i].hi;
    if (!ours) return;
    seed = seed * 1103515245 + 12345;
    const int slot = (int)((seed >> 20) % 64);
    if (kept[slot]) {
        free(kept[slot]);
        kept[slot] = NULL;
    } else {
        kept[slot] = malloc((seed >> 8) % 3000 + 1);
    }
    free(malloc((seed >> 8) % 3000 + 2000));
    ++handled;
}

int main(int argc, char** argv) {
    if (argc < 2 || atoi(argv[1]) == 0) {
        printf("0\n");  /* stdout's buffer, as the run's */
        return 0;
    }
    dl_iterate_phdr(find_code, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_alarm;
    sa.sa_flags = SA_RESTART | SA_SIGINFO;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval every = {{0, 100}, {0, 100}}, stop = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &every, NULL);
    void* blocks[256] = {0};
    unsigned s = 7;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        for (int k = 0; k < 1000; ++k) {
            s = s * 1664525 + 1013904223;
            const int i = (int)((s >> 10) % 256);
            if (blocks[i]) {
                free(blocks[i]);
                blocks[i] = NULL;
            } else {
                blocks[i] = malloc((s >> 16) % 1100 + 1);
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < atoi(argv[1]) ||
             handled < 1000);
    setitimer(ITIMER_REAL, &stop, NULL);
    for (int i = 0; i < 256; ++i) free(blocks[i]);
    for (int i = 0; i < 64; ++i) free(kept[i]);
    printf("%ld\n", handled);
    return 0;
}
