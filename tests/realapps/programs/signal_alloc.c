/* A signal handler that allocates: a helper thread sends SIGNALS SIGUSR1s
   to the main thread, whose handler does exactly one malloc and one free
   (glibc's malloc is not async-signal-safe, so the interrupted code does no
   allocation of its own: only the agent's tolerance is under test). Prints
   "handled=SIGNALS".
     signal_alloc SIGNALS */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_long g_handled;
static void* volatile g_sink;

static void on_usr1(int sig) {
    (void)sig;
    char* p = malloc(48);
    g_sink = p;
    free(p);
    atomic_fetch_add(&g_handled, 1);
}

static pthread_t g_main;
static long g_signals;

static void* sender(void* arg) {
    (void)arg;
    for (long i = 0; i < g_signals; ++i) {
        long seen = atomic_load(&g_handled);
        pthread_kill(g_main, SIGUSR1);
        while (atomic_load(&g_handled) == seen) sched_yield(); /* one at a time: none coalesce */
    }
    return NULL;
}

int main(int argc, char** argv) {
    g_signals = argc > 1 ? atol(argv[1]) : 1000;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    g_main = pthread_self();
    pthread_t t;
    pthread_create(&t, NULL, sender, NULL);
    volatile unsigned long spin = 0;
    while (atomic_load(&g_handled) < g_signals) ++spin; /* interrupted here, never inside malloc */
    pthread_join(t, NULL);
    printf("handled=%ld\n", atomic_load(&g_handled));
    return 0;
}
