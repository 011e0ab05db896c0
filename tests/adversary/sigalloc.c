/* Single-threaded: a timer's signal handler allocates (as real programs do),
   main frees what the handler allocated, while readers poll (the agent then
   snapshots on this thread, inside a hook). In the end every block is freed:
   the exit report must say allocs == frees (+ what stays live). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#define Q 4096
static void* volatile q[Q];
static volatile unsigned head, tail;
static void on_alarm(int s) { (void)s; if (head - tail < Q) { q[head % Q] = malloc(24); head = head + 1; } }
int main(int argc, char** argv) {
    double secs = argc > 1 ? atof(argv[1]) : 3;
    struct sigaction sa = {0}; sa.sa_handler = on_alarm; sa.sa_flags = SA_RESTART; sigaction(SIGALRM, &sa, 0);
    struct itimerval it = {{0, 50}, {0, 50}}; setitimer(ITIMER_REAL, &it, 0);
    struct timespec t0, t; clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        for (int i = 0; i < 100; ++i) { void* volatile p = malloc(40); free(p); }
        while (tail != head) { free(q[tail % Q]); tail = tail + 1; }
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) * 1e-9 < secs);
    it = (struct itimerval){0}; setitimer(ITIMER_REAL, &it, 0);
    while (tail != head) { free(q[tail % Q]); tail = tail + 1; }
    printf("handler allocations: %u\n", head);
    return 0;
}
