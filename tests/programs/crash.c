/* Leaks N objects of 100 bytes (argv[1]), sleeps argv[2] ms, then dies of a
   real SIGSEGV: no destructor runs, so the agent writes no exit report. */
#include <stdlib.h>
#include <unistd.h>

void* volatile keep[100000];
int* volatile nowhere;

int main(int argc, char** argv) {
    int n = argc > 1 ? atoi(argv[1]) : 0;
    int ms = argc > 2 ? atoi(argv[2]) : 0;
    for (int i = 0; i < n && i < 100000; ++i) keep[i] = malloc(100);
    usleep((useconds_t)ms * 1000);
    *nowhere = 1;
    return 0;
}
