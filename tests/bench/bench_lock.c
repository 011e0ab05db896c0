/* Mutex microbenchmark. Prints nanoseconds per operation pair:
     bench_lock lock N        N uncontended pthread_mutex_lock + unlock pairs
     bench_lock trylock N     N uncontended pthread_mutex_trylock + unlock pairs
                              (the cost "try first, time on failure" adds)
     bench_lock contended N   two threads, N lock + unlock pairs each on one
                              mutex with a tiny critical section; ns per pair
                              over the wall time of both
   With a "-mt" suffix (lock-mt, trylock-mt) an idle second thread exists
   while measuring: glibc skips the lock prefix of a mutex's atomic
   instructions while a process is single-threaded, and the agent's
   publisher thread makes every process multi-threaded, so "-mt" isolates
   the cost of the hook itself. The uncontended cases are timed in 20
   slices and print the fastest, as bench_malloc does: on a shared machine
   the others carry the neighbours' noise. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static volatile unsigned long shared;
static long pairs;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void* locker(void* arg) {
    for (long i = 0; i < pairs; ++i) {
        pthread_mutex_lock(&mutex);
        shared = shared + 1;
        pthread_mutex_unlock(&mutex);
    }
    return arg;
}

static int idle_pipe[2];
static void* idle(void* arg) {
    char c;
    (void)!read(idle_pipe[0], &c, 1); /* never written: ends with the process */
    return arg;
}

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    pairs = atol(argv[2]);
    char mode[32];
    snprintf(mode, sizeof mode, "%s", argv[1]);
    char* mt = strstr(mode, "-mt");
    if (mt) {
        *mt = '\0';
        pthread_t t;
        if (pipe(idle_pipe) != 0 || pthread_create(&t, NULL, idle, NULL) != 0) return 1;
    }
    const int lock = strcmp(mode, "lock") == 0, trylock = strcmp(mode, "trylock") == 0;
    if (lock || trylock) {
        const long slice = pairs / 20 > 0 ? pairs / 20 : 1;
        double best = 1e300;
        for (long done = 0; done < pairs; done += slice) {
            const double t0 = now();
            for (long i = 0; i < slice; ++i) {
                if (lock) {
                    pthread_mutex_lock(&mutex);
                } else if (pthread_mutex_trylock(&mutex) != 0) {
                    return 1;
                }
                shared = shared + 1;
                pthread_mutex_unlock(&mutex);
            }
            const double t = (now() - t0) / (double)slice;
            if (t < best) best = t;
        }
        printf("%.3f\n", best);
        return 0;
    }
    double t0 = now();
    if (strcmp(mode, "contended") == 0) {
        pthread_t t[2];
        for (int i = 0; i < 2; ++i) pthread_create(&t[i], NULL, locker, NULL);
        for (int i = 0; i < 2; ++i) pthread_join(t[i], NULL);
        pairs *= 2;
    } else {
        return 2;
    }
    printf("%.3f\n", (now() - t0) / (double)pairs);
    return 0;
}
