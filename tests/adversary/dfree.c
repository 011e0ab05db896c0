/* A double free that glibc detects inside free, with the arena lock held,
   while another thread allocates: abort() from inside malloc. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
void* volatile sink;
void* volatile keep[5000];
static void* churn(void* a) { for (;;) { sink = malloc(64); free(sink); } return a; }
int main(int argc, char** argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    for (int i = 0; i < 5000; ++i) keep[i] = malloc(100);
    for (int i = 0; i < threads; ++i) { pthread_t t; pthread_create(&t, 0, churn, 0); }
    usleep(50000);
    void* volatile p = malloc(5000); keep[0] = malloc(5000);
    free(p);
    free(p);
    puts("not reached");
    return 0;
}
