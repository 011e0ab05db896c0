/* Burns CPU_SECONDS (argv[1]) of CPU split over THREADS (argv[2]) threads,
   each spinning until its own CPU clock reaches its share, then prints the
   process's user CPU seconds from getrusage. With "wait" as argv[3] it then
   waits for a line on stdin before exiting. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double share;

static double thread_cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void* spin(void* arg) {
    /* Reading the thread's CPU clock is a system call: check it rarely, so
       nearly all the time burnt is user time. */
    volatile unsigned long x = 0;
    while (thread_cpu() < share)
        for (int i = 0; i < 1000000; ++i) x = x + 1;
    return arg;
}

int main(int argc, char** argv) {
    /* Unbuffered: stdin's buffer would be malloc'd at the first read, after
       the line that tells a test to take its reading. */
    setvbuf(stdin, NULL, _IONBF, 0);
    if (argc < 3) return 2;
    int n = atoi(argv[2]);
    if (n < 1 || n > 64) return 2;
    share = atof(argv[1]) / n;
    pthread_t t[64];
    for (int i = 0; i < n; ++i) pthread_create(&t[i], NULL, spin, NULL);
    for (int i = 0; i < n; ++i) pthread_join(t[i], NULL);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%.6f\n", (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6);
    fflush(stdout);
    if (argc > 3 && strcmp(argv[3], "wait") == 0) {
        char line[16];
        if (!fgets(line, sizeof line, stdin)) return 0;
    }
    return 0;
}
