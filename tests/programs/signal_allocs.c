/* malloc and free in a signal handler (SIGALRM, every 100 us) while
   the main loop allocates and frees too, for argv[1] ms. Everything is
   freed, so the live object count must not move: prints the handler count. */
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
    do {
        for (int i = 0; i < 1000; ++i) {
            void* volatile p = malloc((size_t)(i % 200) + 1);
            free(p);
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("%d\n", (int)handled);
    return 0;
}
