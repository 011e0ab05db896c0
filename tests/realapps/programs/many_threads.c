/* Thousands of threads, created and joined in waves of WAVE: each thread
   mallocs one 64-byte block and frees it (or does nothing when ALLOC is 0,
   the twin run for exact comparisons). Prints "threads=N".
     many_threads N WAVE ALLOC */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static void* volatile g_sink;

static void* body(void* arg) {
    if (arg) {
        void* p = malloc(64);
        g_sink = p;
        free(p);
    }
    return NULL;
}

int main(int argc, char** argv) {
    const long n = argc > 1 ? atol(argv[1]) : 10000;
    const long wave = argc > 2 ? atol(argv[2]) : 100;
    void* alloc = argc > 3 && atoi(argv[3]) ? (void*)1 : NULL;
    pthread_t* th = calloc((size_t)wave, sizeof *th);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    long done = 0;
    while (done < n) {
        long k = n - done < wave ? n - done : wave;
        for (long i = 0; i < k; ++i) {
            if (pthread_create(&th[i], &attr, body, alloc) != 0) {
                fprintf(stderr, "pthread_create failed after %ld threads\n", done + i);
                return 1;
            }
        }
        for (long i = 0; i < k; ++i) pthread_join(th[i], NULL);
        done += k;
    }
    free(th);
    printf("threads=%ld\n", done);
    return 0;
}
