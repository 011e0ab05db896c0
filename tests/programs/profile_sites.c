/* Allocations and lock waits from known functions, for the profile tests.
 *
 *   profile_sites heap MB        alpha_site allocates 3/4 of MB MiB, beta_site 1/4
 *                                (both kept), gamma_site MB/2 MiB (all freed)
 *   profile_sites threads T MB   the same, from T threads at once
 *   profile_sites fork MB        heap, then a child that runs child_site and exits
 *   profile_sites sizes MB       small_site allocates MB/2 MiB in 64-byte blocks, large_site
 *                                MB/2 MiB in 4000-byte ones (both kept): the two ways the agent
 *                                schedules samples (per small size, and by bytes) must agree
 *   profile_sites mutex ROUNDS   alpha_lock_site waits 15 ms per round, beta_lock_site 5 ms
 *
 * Then prints "ready" and waits for stdin to close before exiting, so a test
 * can profile the live process (or let it exit at once with stdin at EOF).
 * The sites have external linkage and are never inlined: their names must
 * show in the profile as the leaf frames. */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { kBlock = 512 };

/* Live blocks are chained so they stay reachable. */
struct block {
    struct block* next;
};

static void* keep(struct block** list, void* p) {
    struct block* b = p;
    b->next = *list;
    *list = b;
    return p;
}

__attribute__((noinline)) void alpha_site(struct block** list, size_t bytes) {
    for (size_t done = 0; done < bytes; done += kBlock) keep(list, malloc(kBlock));
}

__attribute__((noinline)) void beta_site(struct block** list, size_t bytes) {
    for (size_t done = 0; done < bytes; done += kBlock) keep(list, malloc(kBlock));
}

__attribute__((noinline)) void gamma_site(size_t bytes) {
    struct block* list = NULL;
    for (size_t done = 0; done < bytes; done += kBlock) keep(&list, malloc(kBlock));
    while (list) {
        struct block* next = list->next;
        free(list);
        list = next;
    }
}

__attribute__((noinline)) void child_site(struct block** list, size_t bytes) {
    for (size_t done = 0; done < bytes; done += kBlock) keep(list, malloc(kBlock));
}

enum { kSmallBlock = 64, kLargeBlock = 4000 };

__attribute__((noinline)) void small_site(struct block** list, size_t bytes) {
    for (size_t done = 0; done < bytes; done += kSmallBlock) keep(list, malloc(kSmallBlock));
}

__attribute__((noinline)) void large_site(struct block** list, size_t bytes) {
    for (size_t done = 0; done < bytes; done += kLargeBlock) keep(list, malloc(kLargeBlock));
}

static void sizes(struct block** list, size_t mib) {
    const size_t bytes = mib << 20;
    for (int round = 0; round < 16; ++round) {
        small_site(list, bytes / 2 / 16);
        large_site(list, bytes / 2 / 16);
    }
}

static void heap(struct block** list, size_t mib) {
    const size_t bytes = mib << 20;
    /* Interleaved, so that neither site owns a phase of the run. */
    for (int round = 0; round < 16; ++round) {
        alpha_site(list, bytes * 3 / 4 / 16);
        beta_site(list, bytes / 4 / 16);
        gamma_site(bytes / 2 / 16);
    }
}

static size_t g_mib;

static void* heap_thread(void* arg) {
    (void)arg;
    struct block* list = NULL;  /* leaked on purpose: in use at the end */
    heap(&list, g_mib);
    return list;
}

/* ---- mutex ---- */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static sem_t g_held, g_go, g_locking;
static int g_hold_ms;

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Takes the lock when told to, says so, and holds it g_hold_ms from when
   the main thread is about to lock: timed from the handshake alone, a main
   thread woken late on a loaded machine could find the lock free. */
static void* holder(void* arg) {
    (void)arg;
    for (;;) {
        sem_wait(&g_go);
        if (g_hold_ms < 0) return NULL;
        pthread_mutex_lock(&g_lock);
        sem_post(&g_held);
        sem_wait(&g_locking);
        sleep_ms(g_hold_ms);
        pthread_mutex_unlock(&g_lock);
    }
}

static void contend(int hold_ms) {
    g_hold_ms = hold_ms;
    sem_post(&g_go);
    sem_wait(&g_held); /* the holder has the lock now */
    sem_post(&g_locking);
}

__attribute__((noinline)) void alpha_lock_site(void) {
    contend(15);
    pthread_mutex_lock(&g_lock);
    pthread_mutex_unlock(&g_lock);
}

__attribute__((noinline)) void beta_lock_site(void) {
    contend(5);
    pthread_mutex_lock(&g_lock);
    pthread_mutex_unlock(&g_lock);
}

static void mutex(int rounds) {
    pthread_t t;
    sem_init(&g_held, 0, 0);
    sem_init(&g_go, 0, 0);
    sem_init(&g_locking, 0, 0);
    pthread_create(&t, NULL, holder, NULL);
    for (int i = 0; i < rounds; ++i) {
        alpha_lock_site();
        beta_lock_site();
    }
    g_hold_ms = -1;
    sem_post(&g_go);
    pthread_join(t, NULL);
}

static void ready_then_wait(void) {
    printf("ready\n");
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
    }
}

int main(int argc, char** argv) {
    /* Unbuffered: stdin's buffer would be malloc'd at the first read, after
       the line that tells a test to take its reading. */
    setvbuf(stdin, NULL, _IONBF, 0);
    if (argc < 3) {
        fprintf(stderr, "usage: %s heap MB | threads T MB | fork MB | sizes MB | mutex ROUNDS\n", argv[0]);
        return 2;
    }
    struct block* list = NULL;
    const char* mode = argv[1];
    if (strcmp(mode, "heap") == 0) {
        heap(&list, strtoul(argv[2], NULL, 10));
    } else if (strcmp(mode, "threads") == 0 && argc == 4) {
        const int n = atoi(argv[2]);
        g_mib = strtoul(argv[3], NULL, 10);
        pthread_t* t = calloc((size_t)n, sizeof *t);
        for (int i = 0; i < n; ++i) pthread_create(&t[i], NULL, heap_thread, NULL);
        for (int i = 0; i < n; ++i) pthread_join(t[i], NULL);
    } else if (strcmp(mode, "fork") == 0) {
        const size_t mib = strtoul(argv[2], NULL, 10);
        heap(&list, mib);
        const pid_t child = fork();
        if (child == 0) {
            child_site(&list, mib << 20);
            exit(0);
        }
        int status = 0;
        if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "child failed\n");
            return 1;
        }
    } else if (strcmp(mode, "sizes") == 0) {
        sizes(&list, strtoul(argv[2], NULL, 10));
    } else if (strcmp(mode, "mutex") == 0) {
        mutex(atoi(argv[2]));
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    ready_then_wait();
    return 0;
}
