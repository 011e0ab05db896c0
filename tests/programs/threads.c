/* Starts 100 threads and keeps 50 alive: of the 50 that end at once, a third
   returns, a third calls pthread_exit, a third is cancelled. Of the 50 that
   live on, 24 ask for a 256 KiB stack, 1 brings its own stack, 25 take the
   default. Protocol on stdout/stdin: prints "live" once the short-lived ones
   are joined; on a line from stdin releases and joins the rest and prints
   "joined"; exits at the next line or at EOF. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_barrier_t started, release_all;

static void* returns(void* arg) { return arg; }
static void* exits(void* arg) { pthread_exit(arg); }
static void* waits_for_cancel(void* arg) {
    for (;;) pause(); /* a cancellation point */
    return arg;
}
static void* lives(void* arg) {
    pthread_barrier_wait(&started); /* "live" means running, not just created */
    pthread_barrier_wait(&release_all);
    return arg;
}

static void wait_line(void) {
    char line[64];
    if (!fgets(line, sizeof line, stdin)) return;
}

int main(void) {
    /* Unbuffered: stdin's buffer would be malloc'd at the first read, after
       the line that tells a test to take its reading. */
    setvbuf(stdin, NULL, _IONBF, 0);
    pthread_t short_lived[50], long_lived[50];
    for (int i = 0; i < 50; ++i) {
        void* (*fn)(void*) = i % 3 == 0 ? returns : i % 3 == 1 ? exits : waits_for_cancel;
        if (pthread_create(&short_lived[i], NULL, fn, NULL) != 0) return 1;
    }
    for (int i = 0; i < 50; ++i) {
        if (i % 3 == 2) pthread_cancel(short_lived[i]);
        pthread_join(short_lived[i], NULL);
    }

    pthread_barrier_init(&started, NULL, 51);
    pthread_barrier_init(&release_all, NULL, 51);
    static char own_stack[1 << 20] __attribute__((aligned(64)));
    for (int i = 0; i < 50; ++i) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        if (i < 24) pthread_attr_setstacksize(&attr, 256 * 1024);
        if (i == 24) pthread_attr_setstack(&attr, own_stack, sizeof own_stack);
        if (pthread_create(&long_lived[i], &attr, lives, NULL) != 0) return 1;
        pthread_attr_destroy(&attr);
    }
    pthread_barrier_wait(&started);
    printf("live\n");
    fflush(stdout);

    wait_line();
    pthread_barrier_wait(&release_all);
    for (int i = 0; i < 50; ++i) pthread_join(long_lived[i], NULL);
    printf("joined\n");
    fflush(stdout);
    wait_line();
    return 0;
}
