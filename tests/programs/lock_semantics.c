/* Every mutex and rwlock type and return code the lock hooks must preserve,
   one line per call: "case: result". Run with and without the agent; the
   outputs must be identical. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char* name(int rc) {
    switch (rc) {
        case 0: return "0";
        case EBUSY: return "EBUSY";
        case EDEADLK: return "EDEADLK";
        case EPERM: return "EPERM";
        case EINVAL: return "EINVAL";
        case ETIMEDOUT: return "ETIMEDOUT";
        case EOWNERDEAD: return "EOWNERDEAD";
        case ENOTRECOVERABLE: return "ENOTRECOVERABLE";
        case EAGAIN: return "EAGAIN";
        default: return strerror(rc);
    }
}

static void show(const char* what, int rc) { printf("%s: %s\n", what, name(rc)); }

static void init_mutex(pthread_mutex_t* m, int type, int robust, int pshared, int protocol) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, type);
    if (robust) pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (pshared) pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (protocol) pthread_mutexattr_setprotocol(&a, protocol);
    pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
}

static struct timespec in_ms(clockid_t c, long ms) {
    struct timespec t;
    clock_gettime(c, &t);
    t.tv_nsec += ms * 1000000L;
    t.tv_sec += t.tv_nsec / 1000000000L;
    t.tv_nsec %= 1000000000L;
    return t;
}

/* A thread that takes a lock and then either keeps it until told, or dies with it. */
struct holder {
    pthread_mutex_t* m;
    pthread_rwlock_t* l;
    int read, die;
    pthread_barrier_t taken, release;
};
static void* hold(void* p) {
    struct holder* h = p;
    if (h->m) pthread_mutex_lock(h->m);
    else if (h->read) pthread_rwlock_rdlock(h->l);
    else pthread_rwlock_wrlock(h->l);
    pthread_barrier_wait(&h->taken);
    if (h->die) return NULL; /* exits holding a (robust) mutex */
    pthread_barrier_wait(&h->release);
    if (h->m) pthread_mutex_unlock(h->m);
    else pthread_rwlock_unlock(h->l);
    return NULL;
}
static pthread_t start_holder(struct holder* h) {
    pthread_t t;
    pthread_barrier_init(&h->taken, NULL, 2);
    pthread_barrier_init(&h->release, NULL, 2);
    pthread_create(&t, NULL, hold, h);
    pthread_barrier_wait(&h->taken);
    return t;
}
static void stop_holder(struct holder* h, pthread_t t) {
    if (!h->die) pthread_barrier_wait(&h->release);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&h->taken);
    pthread_barrier_destroy(&h->release);
}

static void normal_recursive_errorcheck(void) {
    pthread_mutex_t m;
    init_mutex(&m, PTHREAD_MUTEX_NORMAL, 0, 0, 0);
    show("normal lock", pthread_mutex_lock(&m));
    show("normal trylock held", pthread_mutex_trylock(&m));
    show("normal unlock", pthread_mutex_unlock(&m));

    init_mutex(&m, PTHREAD_MUTEX_RECURSIVE, 0, 0, 0);
    show("recursive lock", pthread_mutex_lock(&m));
    show("recursive relock", pthread_mutex_lock(&m));
    struct timespec t = in_ms(CLOCK_REALTIME, 10);
    show("recursive timedlock by owner", pthread_mutex_timedlock(&m, &t));
    for (int i = 0; i < 3; ++i) show("recursive unlock", pthread_mutex_unlock(&m));
    show("recursive unlock unowned", pthread_mutex_unlock(&m));

    init_mutex(&m, PTHREAD_MUTEX_ERRORCHECK, 0, 0, 0);
    show("errorcheck lock", pthread_mutex_lock(&m));
    show("errorcheck relock", pthread_mutex_lock(&m));
    t = in_ms(CLOCK_MONOTONIC, 10);
    show("errorcheck clocklock by owner", pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &t));
    show("errorcheck unlock", pthread_mutex_unlock(&m));
    show("errorcheck unlock unowned", pthread_mutex_unlock(&m));

    init_mutex(&m, PTHREAD_MUTEX_ERRORCHECK, 0, 0, PTHREAD_PRIO_INHERIT);
    show("pi errorcheck lock", pthread_mutex_lock(&m));
    show("pi errorcheck relock", pthread_mutex_lock(&m));
    show("pi errorcheck unlock", pthread_mutex_unlock(&m));
}

static void timed(void) {
    pthread_mutex_t m;
    init_mutex(&m, PTHREAD_MUTEX_NORMAL, 0, 0, 0);
    struct holder h = {.m = &m};
    pthread_t t = start_holder(&h);
    struct timespec ts = in_ms(CLOCK_REALTIME, 30);
    show("timedlock held", pthread_mutex_timedlock(&m, &ts));
    ts = in_ms(CLOCK_MONOTONIC, 30);
    show("clocklock held", pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &ts));
    struct timespec bad = {0, 2000000000L};
    show("timedlock held bad time", pthread_mutex_timedlock(&m, &bad));
    show("clocklock held bad clock", pthread_mutex_clocklock(&m, 12345, &ts));
    stop_holder(&h, t);
    ts = in_ms(CLOCK_REALTIME, 30);
    show("timedlock free", pthread_mutex_timedlock(&m, &ts));
    show("unlock", pthread_mutex_unlock(&m));
}

static void robust(void) {
    for (int recover = 0; recover < 2; ++recover) {
        pthread_mutex_t m;
        init_mutex(&m, PTHREAD_MUTEX_NORMAL, 1, 0, 0);
        struct holder h = {.m = &m, .die = 1};
        stop_holder(&h, start_holder(&h));
        show("robust lock after owner died", pthread_mutex_lock(&m));
        if (recover) {
            show("robust consistent", pthread_mutex_consistent(&m));
            show("robust unlock", pthread_mutex_unlock(&m));
            show("robust lock recovered", pthread_mutex_lock(&m));
            show("robust unlock", pthread_mutex_unlock(&m));
        } else {
            show("robust unlock without consistent", pthread_mutex_unlock(&m));
            show("robust lock unrecoverable", pthread_mutex_lock(&m));
            struct timespec ts = in_ms(CLOCK_REALTIME, 10);
            show("robust timedlock unrecoverable", pthread_mutex_timedlock(&m, &ts));
        }
    }
}

static void process_shared(void) {
    pthread_mutex_t* m = mmap(NULL, 2 * sizeof *m, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    init_mutex(&m[0], PTHREAD_MUTEX_NORMAL, 0, 1, 0);
    init_mutex(&m[1], PTHREAD_MUTEX_NORMAL, 1, 1, 0);
    int go[2], done[2];
    if (pipe(go) || pipe(done)) return;
    pid_t child = fork();
    if (child == 0) {
        pthread_mutex_lock(&m[0]);
        pthread_mutex_lock(&m[1]);
        (void)!write(done[1], "x", 1);
        char c;
        (void)!read(go[0], &c, 1);
        pthread_mutex_unlock(&m[0]);
        _exit(0); /* dies holding the robust one */
    }
    char c;
    (void)!read(done[0], &c, 1);
    struct timespec ts = in_ms(CLOCK_REALTIME, 30);
    show("pshared timedlock held by other process", pthread_mutex_timedlock(&m[0], &ts));
    (void)!write(go[1], "x", 1);
    waitpid(child, NULL, 0);
    show("pshared lock after release", pthread_mutex_lock(&m[0]));
    show("pshared unlock", pthread_mutex_unlock(&m[0]));
    show("pshared robust lock after owner process died", pthread_mutex_lock(&m[1]));
    show("pshared robust consistent", pthread_mutex_consistent(&m[1]));
    show("pshared robust unlock", pthread_mutex_unlock(&m[1]));
}

static void rwlocks(void) {
    pthread_rwlock_t l;
    pthread_rwlock_init(&l, NULL);
    show("rdlock", pthread_rwlock_rdlock(&l));
    show("rdlock again", pthread_rwlock_rdlock(&l));
    struct timespec ts = in_ms(CLOCK_REALTIME, 10);
    show("timedrdlock while reading", pthread_rwlock_timedrdlock(&l, &ts));
    show("trywrlock while reading", pthread_rwlock_trywrlock(&l));
    for (int i = 0; i < 3; ++i) show("unlock", pthread_rwlock_unlock(&l));
    show("wrlock", pthread_rwlock_wrlock(&l));
    show("wrlock by owner", pthread_rwlock_wrlock(&l));
    show("rdlock by writer", pthread_rwlock_rdlock(&l));
    ts = in_ms(CLOCK_MONOTONIC, 10);
    show("clockwrlock by owner", pthread_rwlock_clockwrlock(&l, CLOCK_MONOTONIC, &ts));
    show("unlock", pthread_rwlock_unlock(&l));

    struct holder h = {.l = &l, .read = 0};
    pthread_t t = start_holder(&h);
    ts = in_ms(CLOCK_REALTIME, 30);
    show("timedrdlock while written", pthread_rwlock_timedrdlock(&l, &ts));
    ts = in_ms(CLOCK_MONOTONIC, 30);
    show("clockrdlock while written", pthread_rwlock_clockrdlock(&l, CLOCK_MONOTONIC, &ts));
    ts = in_ms(CLOCK_REALTIME, 30);
    show("timedwrlock while written", pthread_rwlock_timedwrlock(&l, &ts));
    struct timespec bad = {0, -1};
    show("timedwrlock bad time", pthread_rwlock_timedwrlock(&l, &bad));
    stop_holder(&h, t);

    struct holder r = {.l = &l, .read = 1};
    t = start_holder(&r);
    ts = in_ms(CLOCK_MONOTONIC, 30);
    show("clockwrlock while read", pthread_rwlock_clockwrlock(&l, CLOCK_MONOTONIC, &ts));
    show("rdlock while read", pthread_rwlock_rdlock(&l));
    show("unlock", pthread_rwlock_unlock(&l));
    stop_holder(&r, t);
    show("wrlock free", pthread_rwlock_wrlock(&l));
    show("unlock", pthread_rwlock_unlock(&l));
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    normal_recursive_errorcheck();
    timed();
    robust();
    process_shared();
    rwlocks();
    return 0;
}
