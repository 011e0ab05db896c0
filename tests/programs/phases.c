/* Allocations in two phases, for the delta profiles of serve's /debug/pprof.
 *
 *   phases MB    first_phase_site allocates MB MiB in 512-byte blocks (kept),
 *                prints "ready"; then each line read on stdin makes
 *                second_phase_site allocate MB MiB more (kept) and prints
 *                "done"; exits at end of input.
 *
 * A profile taken across a line shows only second_phase_site in its delta. */
#include <stdio.h>
#include <stdlib.h>

enum { kBlock = 512 };

struct block {
    struct block* next;
};

static struct block* kept;

static void keep(void* p) {
    struct block* b = p;
    b->next = kept;
    kept = b;
}

__attribute__((noinline)) void first_phase_site(size_t bytes) {
    for (size_t done = 0; done < bytes; done += kBlock) keep(malloc(kBlock));
}

__attribute__((noinline)) void second_phase_site(size_t bytes) {
    for (size_t done = 0; done < bytes; done += kBlock) keep(malloc(kBlock));
}

int main(int argc, char** argv) {
    /* Unbuffered: stdin's buffer would be malloc'd at the first read, after
       the line that tells a test to take its reading. */
    setvbuf(stdin, NULL, _IONBF, 0);
    if (argc != 2) {
        fprintf(stderr, "usage: phases MB\n");
        return 2;
    }
    const size_t bytes = (size_t)atoi(argv[1]) << 20;
    first_phase_site(bytes);
    printf("ready\n");
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        second_phase_site(bytes);
        printf("done\n");
        fflush(stdout);
    }
    return 0;
}
