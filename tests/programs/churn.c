/* Allocates and frees in N threads (argv[1], default 2) until stdin closes
   or argv[2] seconds pass; used by coherence tests that read while it runs. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static atomic_int stop;

static void* worker(void* arg) {
    unsigned seed = (unsigned)(size_t)arg;
    void* ring[256] = {0};
    while (!atomic_load(&stop)) {
        unsigned i = (seed = seed * 1103515245u + 12345u) >> 8;
        free(ring[i % 256]);
        ring[i % 256] = malloc((i % 4096) + 1);
        if (i % 7 == 0) ring[i % 256] = realloc(ring[i % 256], (i % 8192) + 1);
    }
    for (int j = 0; j < 256; ++j) free(ring[j]);
    return NULL;
}

int main(int argc, char** argv) {
    /* Unbuffered: stdin's buffer would be malloc'd at the first read, after
       the line that tells a test to take its reading. */
    setvbuf(stdin, NULL, _IONBF, 0);
    int n = argc > 1 ? atoi(argv[1]) : 2;
    int secs = argc > 2 ? atoi(argv[2]) : 5;
    pthread_t th[64];
    for (int i = 0; i < n && i < 64; ++i) pthread_create(&th[i], NULL, worker, (void*)(size_t)(i + 1));
    printf("ready\n");
    fflush(stdout);
    sleep((unsigned)secs);
    atomic_store(&stop, 1);
    for (int i = 0; i < n && i < 64; ++i) pthread_join(th[i], NULL);
    return 0;
}
