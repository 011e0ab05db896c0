/* malloc and free in a signal handler (SIGALRM, every 100 us) while
   the main loop allocates and frees too, for argv[1] ms, and on a slow or
   loaded machine longer, until the loop has made 200,000 allocations and
   the handler has run 100 times (30 s at most). argv[1] = 0: one round of
   the loop, the twin. Everything is freed, so the live object count must
   not move: prints the handler count. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static volatile sig_atomic_t handled;
void* volatile handler_sink;  /* the handler's own: never shared with main */

static void on_prof(int sig) {
    (void)sig;
    handler_sink = malloc(48);
    free(handler_sink);
    ++handled;
}

int main(int argc, char** argv) {
    long ms = argc > 1 ? atol(argv[1]) : 500;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_prof;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 100}, {0, 100}};
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long rounds = 0, elapsed;
    do {
        for (int i = 0; i < 1000; ++i) {
            void* volatile p = malloc((size_t)(i % 200) + 1);
            free(p);
        }
        ++rounds;
        clock_gettime(CLOCK_MONOTONIC, &t);
        elapsed = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
    } while (ms > 0 && (elapsed < ms || rounds < 200 || handled < 100) && elapsed < 30000);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("%d\n", (int)handled);
    return 0;
}
