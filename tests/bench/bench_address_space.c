/* Address space left to a program: mallocs 1 MiB blocks (never touched) until
   malloc fails and prints how many MiB it got. Run under an RLIMIT_AS, the
   difference with and without the agent is what the agent reserves. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    long mib = 0;
    while (malloc(1 << 20)) ++mib;  /* kept: freeing would let malloc reuse the block */
    printf("%ld\n", mib);
    return 0;
}
