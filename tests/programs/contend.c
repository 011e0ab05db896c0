/* Known contention: the main thread holds a lock for argv[2] ms while a
   second thread blocks on it, then releases it and joins.
     contend mutex HOLD_MS    the second thread calls pthread_mutex_lock
     contend rwlock HOLD_MS   main holds the write lock, the second thread rdlocks
   With HOLD_MS = 0 nothing is held: the twin without contention. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;
static atomic_int about_to_lock;
static int use_rwlock;

static void* blocker(void* arg) {
    atomic_store(&about_to_lock, 1);
    if (use_rwlock) {
        pthread_rwlock_rdlock(&rwlock);
        pthread_rwlock_unlock(&rwlock);
    } else {
        pthread_mutex_lock(&mutex);
        pthread_mutex_unlock(&mutex);
    }
    return arg;
}

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    use_rwlock = strcmp(argv[1], "rwlock") == 0;
    const long hold_ms = atol(argv[2]);
    if (hold_ms > 0) {
        if (use_rwlock) pthread_rwlock_wrlock(&rwlock);
        else pthread_mutex_lock(&mutex);
    }
    pthread_t t;
    pthread_create(&t, NULL, blocker, NULL);
    while (!atomic_load(&about_to_lock)) sched_yield();
    struct timespec d = {hold_ms / 1000, (hold_ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
    if (hold_ms > 0) {
        if (use_rwlock) pthread_rwlock_unlock(&rwlock);
        else pthread_mutex_unlock(&mutex);
    }
    pthread_join(t, NULL);
    return 0;
}
