/* main: close(1); dup(saved) must give 1 (lowest free) while another thread of
   the program creates and joins short-lived threads. Prints the miss count. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static volatile int stop;
static void* nothing(void* a) { return a; }
static void* churner(void* a) {
    while (!stop) { pthread_t t; if (pthread_create(&t, 0, nothing, 0) == 0) pthread_join(t, 0); }
    return a;
}
int main(int argc, char** argv) {
    double secs = argc > 1 ? atof(argv[1]) : 2;
    int saved = dup(1);
    pthread_t c; pthread_create(&c, 0, churner, 0);
    struct timespec t0, t; clock_gettime(CLOCK_MONOTONIC, &t0);
    long rounds = 0, miss = 0;
    do {
        for (int i = 0; i < 1000; ++i, ++rounds) {
            close(1);
            int r = dup(saved);
            if (r != 1) { ++miss; close(r); }
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) * 1e-9 < secs);
    stop = 1; pthread_join(c, 0);
    fprintf(stderr, "rounds %ld, dup did not return 1: %ld\n", rounds, miss);
    return miss != 0;
}
