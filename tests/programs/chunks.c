/* Holds N live blocks of SIZE bytes (argv[1], argv[2]), chained through
   their first word so that nothing else is allocated, prints "held N" and
   waits for stdin to close. Twin runs with different N differ by exactly
   that many live blocks, for the memory classes' per-block accounting. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
    /* Unbuffered: stdin's buffer would be malloc'd at the first read, after
       the line that tells a test to take its reading. */
    setvbuf(stdin, NULL, _IONBF, 0);
    if (argc != 3 || atol(argv[2]) < (long)sizeof(void*)) {
        fprintf(stderr, "usage: %s N SIZE (SIZE >= %zu)\n", argv[0], sizeof(void*));
        return 2;
    }
    const long n = atol(argv[1]);
    const size_t size = (size_t)atol(argv[2]);
    void* list = NULL;
    for (long i = 0; i < n; ++i) {
        void** b = malloc(size);
        if (!b) return 1;
        *b = list;
        list = b;
    }
    printf("held %ld\n", n);
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
    }
    while (list) {
        void* next = *(void**)list;
        free(list);
        list = next;
    }
    return 0;
}
