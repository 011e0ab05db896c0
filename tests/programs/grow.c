/* Allocates for argv[1] seconds, freeing nothing, at a rate that steps up
   every second: argv[2] KiB per 10 ms in the first second, twice that in the
   second, and so on. A rate that visibly changes, for watch and trace tests. */
#include <stdlib.h>
#include <unistd.h>

void* volatile last;

int main(int argc, char** argv) {
    int secs = argc > 1 ? atoi(argv[1]) : 3;
    int kib = argc > 2 ? atoi(argv[2]) : 16;
    for (int i = 0; i < secs * 100; ++i) {
        int n = kib * (1 + i / 100);
        for (int k = 0; k < n; ++k) last = malloc(1024);
        usleep(10000);
    }
    return 0;
}
