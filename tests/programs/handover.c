/* Locks that pass straight to a waiter, for the contention hint: with a
   priority-inheritance mutex the kernel hands the lock to the woken waiter
   before it runs, and a writer-preferring rwlock hands it from writer to
   writer; until the new owner runs, the lock's owner fields still read 0.
     handover pi ROUNDS       main unlocks and relocks at once while a second
                              thread waits: that thread gets the lock and
                              holds it 20 ms, so main's relock waits 20 ms
     handover rwlock ROUNDS   the same with a writer-preferring rwlock: the
                              waiting writer is handed the lock, and main's
                              rdlock waits out its 20 ms
   Each round the second thread also waits about 5 ms for the lock. Both
   threads share one CPU and the second runs at SCHED_IDLE, to make it likely
   that main's relock looks before the new owner has run and recorded itself
   (a race: on an idle machine the new owner often wins it anyway). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t mutex;
static pthread_rwlock_t rwlock;
static int use_rwlock, rounds;
static atomic_int go, waiting, done;  /* rounds in lockstep */

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void* waiter(void* arg) {
    const struct sched_param idle = {0};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle) != 0) exit(3);
    for (int r = 0; r < rounds; ++r) {
        while (atomic_load(&go) <= r) sched_yield();
        atomic_store(&waiting, 1);
        if (use_rwlock) pthread_rwlock_wrlock(&rwlock);
        else pthread_mutex_lock(&mutex);
        atomic_store(&waiting, 0);
        sleep_ms(20);
        if (use_rwlock) pthread_rwlock_unlock(&rwlock);
        else pthread_mutex_unlock(&mutex);
        atomic_store(&done, r + 1);
    }
    return arg;
}

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    use_rwlock = strcmp(argv[1], "rwlock") == 0;
    rounds = atoi(argv[2]);
    cpu_set_t one;
    CPU_ZERO(&one);
    if (sched_getaffinity(0, sizeof one, &one) != 0) return 3;
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &one)) { /* the first CPU allowed */
            CPU_ZERO(&one);
            CPU_SET(c, &one);
            break;
        }
    if (sched_setaffinity(0, sizeof one, &one) != 0) return 3;
    if (use_rwlock) {
        pthread_rwlockattr_t a;
        pthread_rwlockattr_init(&a);
        pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&rwlock, &a);
        pthread_rwlock_wrlock(&rwlock);
    } else {
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        if (pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT) != 0) return 1;
        pthread_mutex_init(&mutex, &a);
        pthread_mutex_lock(&mutex);
    }
    pthread_t t;
    pthread_create(&t, NULL, waiter, NULL);
    for (int r = 0; r < rounds; ++r) {
        atomic_store(&go, r + 1);
        while (!atomic_load(&waiting)) sched_yield();
        sleep_ms(5); /* the waiter is blocked in the lock by now */
        if (use_rwlock) {
            pthread_rwlock_unlock(&rwlock);
            pthread_rwlock_rdlock(&rwlock); /* behind the writer it was handed to */
            pthread_rwlock_unlock(&rwlock);
            pthread_rwlock_wrlock(&rwlock);
        } else {
            pthread_mutex_unlock(&mutex);
            pthread_mutex_lock(&mutex); /* the waiter owns it now */
        }
        while (atomic_load(&done) <= r) sched_yield();
    }
    if (use_rwlock) pthread_rwlock_unlock(&rwlock);
    else pthread_mutex_unlock(&mutex);
    pthread_join(t, NULL);
    printf("rounds %d\n", rounds);
    return 0;
}
