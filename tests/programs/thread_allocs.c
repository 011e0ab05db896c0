/* Starts T threads (argv[1]); each makes K allocations (argv[2]), frees
   them, and exits. With "together" (argv[3]) the threads first wait for one
   another, so that they all take their first allocation, and so claim their
   counting slot, at the same moment. With "killed" (argv[3] or argv[4]) the
   program then ends by SIGKILL, with no exit path: what readers see is what
   the segment held. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int k;
static pthread_barrier_t start;
static int together;

static void* worker(void* arg) {
    (void)arg;
    if (together) pthread_barrier_wait(&start);
    void** p = calloc((size_t)k, sizeof *p);
    for (int i = 0; i < k; ++i) p[i] = malloc(64);
    for (int i = 0; i < k; ++i) free(p[i]);
    free(p);
    return NULL;
}

int main(int argc, char** argv) {
    int t = argc > 1 ? atoi(argv[1]) : 64;
    k = argc > 2 ? atoi(argv[2]) : 1000;
    together = argc > 3 && strcmp(argv[3], "together") == 0;
    const int killed = (argc > 3 && strcmp(argv[3], "killed") == 0) || (argc > 4 && strcmp(argv[4], "killed") == 0);
    if (t < 1) t = 1;
    pthread_barrier_init(&start, NULL, (unsigned)t);
    pthread_t* th = calloc((size_t)t, sizeof *th);
    for (int i = 0; i < t; ++i) pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < t; ++i) pthread_join(th[i], NULL);
    free(th);
    printf("%d threads x %d allocations\n", t, k);
    fflush(stdout);
    if (killed) raise(SIGKILL);
    return 0;
}
