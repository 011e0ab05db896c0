/* Starts T threads (argv[1]); each makes K allocations (argv[2]), frees
   them, and exits. Then prints the object count it expects to see. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static int k;

static void* worker(void* arg) {
    (void)arg;
    void** p = calloc((size_t)k, sizeof *p);
    for (int i = 0; i < k; ++i) p[i] = malloc(64);
    for (int i = 0; i < k; ++i) free(p[i]);
    free(p);
    return NULL;
}

int main(int argc, char** argv) {
    int t = argc > 1 ? atoi(argv[1]) : 64;
    k = argc > 2 ? atoi(argv[2]) : 1000;
    pthread_t* th = calloc((size_t)t, sizeof *th);
    for (int i = 0; i < t; ++i) pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < t; ++i) pthread_join(th[i], NULL);
    free(th);
    printf("%d threads x %d allocations\n", t, k);
    return 0;
}
