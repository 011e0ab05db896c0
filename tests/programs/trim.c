/* Memory on its way back to the system under glibc: allocates argv[1] MiB
   in 1000-byte blocks plus a pin block above them (so freeing them cannot
   shrink the heap's top), then at each line on stdin moves one step:
   "free" frees all but the pin, "trim" calls malloc_trim(0). Prints one
   line after each step. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
    /* Unbuffered: stdin's buffer would be malloc'd at the first read, after
       the line that tells a test to take its reading. */
    setvbuf(stdin, NULL, _IONBF, 0);
    size_t n = ((size_t)(argc > 1 ? atoi(argv[1]) : 200) << 20) / 1000;
    char** blocks = malloc(n * sizeof *blocks);
    for (size_t i = 0; i < n; ++i) {
        blocks[i] = malloc(1000);
        memset(blocks[i], 1, 1000);
    }
    void* pin = malloc(64);
    printf("allocated %zu\n", n);
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "free", 4) == 0) {
            for (size_t i = 0; i < n; ++i) free(blocks[i]);
            printf("freed\n");
        } else if (strncmp(line, "trim", 4) == 0) {
            printf("trimmed %d\n", malloc_trim(0));
        }
        fflush(stdout);
    }
    free(pin);
    free(blocks);
    return 0;
}
