/* fork while other threads allocate and lock: THREADS workers loop on
   malloc/free and a shared mutex while the main thread forks FORKS times.
   Each child allocates (glibc makes malloc fork-safe; the agent must not
   undo that) and returns through exit(), so atexit handlers and the
   agent's exit path run in the child; the parent requires every child to
   exit 0 within 10 s (a deadlocked child is killed and fails the run).
   Prints "forks=F ok=K" on stdout and "children: PID..." on stderr. With
   "fresh" each worker keeps starting short-lived threads instead.
     fork_threads THREADS FORKS [fresh] */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static atomic_int g_stop;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static long g_shared;

static void* short_lived(void* arg) {
    for (int i = 0; i < 50; ++i) {
        char* volatile p = malloc(16 + (size_t)i * 8);
        free(p);
    }
    return arg;
}

/* A worker that keeps starting short-lived threads: stacks are being taken
   on new threads whenever another thread forks. */
static void* starter(void* arg) {
    while (!atomic_load(&g_stop)) {
        pthread_t t;
        if (pthread_create(&t, NULL, short_lived, arg) == 0) pthread_join(t, NULL);
    }
    return NULL;
}

static void* worker(void* arg) {
    unsigned seed = (unsigned)(long)arg;
    while (!atomic_load(&g_stop)) {
        seed = seed * 1103515245u + 12345u;
        char* p = malloc(16 + (seed >> 16) % 2000);
        p[0] = 1;
        pthread_mutex_lock(&g_lock);
        g_shared += p[0];
        pthread_mutex_unlock(&g_lock);
        free(p);
    }
    return NULL;
}

/* Waits for pid up to 10 s; kills it if it hangs. */
static int child_ok(pid_t pid) {
    for (int i = 0; i < 1000; ++i) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (r < 0) return 0;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return 0;
}

int main(int argc, char** argv) {
    const int threads = argc > 1 ? atoi(argv[1]) : 4;
    const int forks = argc > 2 ? atoi(argv[2]) : 50;
    const int fresh = argc > 3 && !strcmp(argv[3], "fresh");
    pthread_t th[64];
    for (int i = 0; i < threads && i < 64; ++i)
        pthread_create(&th[i], NULL, fresh ? starter : worker, (void*)(long)(i + 1));
    int ok = 0;
    fprintf(stderr, "children:");
    for (int f = 0; f < forks; ++f) {
        pid_t pid = fork();
        if (pid == 0) {
            for (int i = 0; i < 100; ++i) {
                char* volatile p = malloc(64 + i);  /* volatile: never elided */
                free(p);
            }
            free(strdup("child"));
            exit(0);
        }
        if (pid > 0) fprintf(stderr, " %d", (int)pid);
        if (pid > 0 && child_ok(pid)) ++ok;
    }
    fprintf(stderr, "\n");
    atomic_store(&g_stop, 1);
    for (int i = 0; i < threads && i < 64; ++i) pthread_join(th[i], NULL);
    printf("forks=%d ok=%d\n", forks, ok);
    return ok == forks ? 0 : 1;
}
