/* More threads than the segment has shared slots (256): the last one counts
   in a private slot. It allocates N blocks; main (a shared slot) frees them;
   then the process stops itself (SIGSTOP) so no snapshot answers readers. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#define N 100000
static void* blocks[N];
static int pipefd[2];
static atomic_int claimed;
static void* idle(void* a) { void* volatile p = malloc(32); atomic_fetch_add(&claimed, 1); char c; read(pipefd[0], &c, 1); free(p); return a; }
static void* alloc_many(void* a) { for (int i = 0; i < N; ++i) blocks[i] = malloc(64); return a; }
int main(int argc, char** argv) {
    int idle_n = argc > 1 ? atoi(argv[1]) : 299;
    if (getenv("CLOSEFDS")) for (int fd = 3; fd < 1024; ++fd) close(fd);
    pipe(pipefd);
    pthread_t t[1024];
    for (int i = 0; i < idle_n; ++i) { pthread_create(&t[i], 0, idle, 0); while (atomic_load(&claimed) <= i) usleep(50); }
    pthread_t p; pthread_create(&p, 0, alloc_many, 0); pthread_join(p, 0);
    for (int i = 0; i < N; ++i) free(blocks[i]);
    printf("ready %d\n", getpid()); fflush(stdout);
    raise(getenv("KILLSELF") ? SIGKILL : SIGSTOP);
    for (int i = 0; i < idle_n; ++i) write(pipefd[1], "x", 1);
    for (int i = 0; i < idle_n; ++i) pthread_join(t[i], 0);
    puts("done");
    return 0;
}
