/* N threads wait at a barrier, then all crash at once (abort, or SIGSEGV). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
void* volatile keep[1000];
static pthread_barrier_t b;
static int segv;
static void* go(void* a) { pthread_barrier_wait(&b); if (segv) { volatile int* p = 0; *p = 1; } abort(); return a; }
int main(int argc, char** argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    segv = argc > 2 && !strcmp(argv[2], "segv");
    for (int i = 0; i < 1000; ++i) keep[i] = malloc(100);
    pthread_barrier_init(&b, 0, n);
    for (int i = 0; i < n; ++i) { pthread_t t; pthread_create(&t, 0, go, 0); }
    for (;;) pause();
}
