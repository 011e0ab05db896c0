/* Threads cancelled as soon as they are created (deferred cancellation, the
   default), whose first act is malloc. malloc is no cancellation point, so
   each must come back from it before the cancel acts (at pause). Under the
   agent a thread's first malloc claims its counting slot, which reads
   /proc/self/status with pread, a cancellation point: a cancel acting there
   unwound the thread out of malloc with the agent's flag held, and every
   later thread then waited for it.
     cancelled N      prints "cancelled=C returned=R" */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static atomic_int returned;

static void* worker(void* arg) {
    void* volatile p = malloc(100);
    atomic_fetch_add(&returned, 1);
    for (;;) pause();  /* the cancel acts here */
    free(p);
    return arg;
}

int main(int argc, char** argv) {
    const int n = argc > 1 ? atoi(argv[1]) : 100;
    pthread_t* t = calloc((size_t)n, sizeof *t);
    if (!t) return 2;
    /* All alive at once: each claims a new slot, not one an earlier left. */
    for (int i = 0; i < n; ++i) {
        if (pthread_create(&t[i], NULL, worker, NULL) != 0) return 2;
        pthread_cancel(t[i]);
    }
    int cancelled = 0;
    for (int i = 0; i < n; ++i) {
        void* result;
        pthread_join(t[i], &result);
        cancelled += result == PTHREAD_CANCELED;
    }
    free(t);
    printf("cancelled=%d returned=%d\n", cancelled, atomic_load(&returned));
    return 0;
}
