/* Threads churn malloc/free (and hand blocks across threads) while main
   forks children; each child allocates, forks a grandchild that frees the
   child's blocks, and both exit(0). Reports go to GOMETRICS_REPORT=%p. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static atomic_int stop;
static void* _Atomic box;

static atomic_int claimed; static int idle_fd;
static void* idle(void* a) { void* volatile p = malloc(32); atomic_fetch_add(&claimed, 1); char c; read(idle_fd, &c, 1); free(p); return a; }
static void* churn(void* a) {
    while (!atomic_load(&stop)) {
        for (int i = 0; i < 64; ++i) { void* volatile s = malloc(16 + i * 8); free(s); }
        void* p = atomic_exchange(&box, malloc(200));
        free(p);
    }
    return a;
}
int main(int argc, char** argv) {
    int n = argc > 1 ? atoi(argv[1]) : 200, nt = argc > 2 ? atoi(argv[2]) : 4, bad = 0;
    pthread_t t[64];
    int nidle = getenv("IDLE") ? atoi(getenv("IDLE")) : 0;
    static pthread_t it[1024]; int pfd[2]; pipe(pfd); idle_fd = pfd[0];
    for (int i = 0; i < nt; ++i) {
        pthread_create(&t[i], 0, churn, 0);
        if (i == 0) for (int k = 0; k < nidle; ++k) { pthread_create(&it[k], 0, idle, 0); while (atomic_load(&claimed) <= k) usleep(50); }
    }
    usleep(100000);
    void* mine[100];
    for (int i = 0; i < n; ++i) {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); break; }
        if (pid == 0) {
            for (int k = 0; k < 100; ++k) mine[k] = malloc(100);
            pid_t g = fork();
            if (g == 0) { for (int k = 0; k < 100; ++k) free(mine[k]); exit(0); }
            int st; waitpid(g, &st, 0);
            exit(WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 3);
        }
        int st; waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) { fprintf(stderr, "child %d status %#x\n", i, st); ++bad; }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < nt; ++i) pthread_join(t[i], 0);
    printf("done, %d bad\n", bad);
    return bad != 0;
}
