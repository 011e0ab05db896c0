/* Two lock sites that contend in a strictly periodic pattern, for the mutex
   profile's sampling: a sampler that takes every Nth contention aliases with
   it, a random one does not.

     periodic_locks PERIODS HOLD_US

   Each period is a_site, a_site, a_site, b_site. Before each site locks, a
   holder thread takes the lock and keeps it HOLD_US microseconds, so every
   acquisition at either site is contended and waits about as long: a_site
   carries 3/4 of the contentions and of the delay, b_site 1/4. Then prints
   "ready" and waits for stdin to close, so that a test can read the live
   process's profile. The sites have external linkage and are never inlined:
   their names are the leaf frames of the profile. */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static sem_t g_go, g_held;
static long g_hold_us;
static int g_stop;

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Takes the lock when told to, says so, holds it, lets go. */
static void* holder(void* arg) {
    (void)arg;
    for (;;) {
        sem_wait(&g_go);
        if (g_stop) return NULL;
        pthread_mutex_lock(&g_lock);
        sem_post(&g_held);
        sleep_us(g_hold_us);
        pthread_mutex_unlock(&g_lock);
    }
}

/* Returns once the holder has the lock. */
static void held_by_holder(void) {
    sem_post(&g_go);
    sem_wait(&g_held);
}

__attribute__((noinline)) void a_site(void) {
    held_by_holder();
    pthread_mutex_lock(&g_lock);
    pthread_mutex_unlock(&g_lock);
}

__attribute__((noinline)) void b_site(void) {
    held_by_holder();
    pthread_mutex_lock(&g_lock);
    pthread_mutex_unlock(&g_lock);
}

int main(int argc, char** argv) {
    /* Unbuffered: stdin's buffer would be malloc'd at the first read, after
       the line that tells a test to take its reading. */
    setvbuf(stdin, NULL, _IONBF, 0);
    if (argc != 3 || atol(argv[1]) <= 0 || atol(argv[2]) <= 0) {
        fprintf(stderr, "usage: %s PERIODS HOLD_US\n", argv[0]);
        return 2;
    }
    const long periods = atol(argv[1]);
    g_hold_us = atol(argv[2]);
    sem_init(&g_go, 0, 0);
    sem_init(&g_held, 0, 0);
    pthread_t t;
    pthread_create(&t, NULL, holder, NULL);
    for (long i = 0; i < periods; ++i) {
        a_site();
        a_site();
        a_site();
        b_site();
    }
    g_stop = 1;
    sem_post(&g_go);
    pthread_join(t, NULL);
    printf("ready\n");
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
    }
    return 0;
}
