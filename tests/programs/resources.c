/* Holds known resources: argv[1] extra open descriptors, argv[2] MiB of
   touched memory, after argv[3] short sleeps. Prints "ready", then exits at
   a line on stdin or EOF. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
    /* Unbuffered: stdin's buffer would be malloc'd at the first read, after
       the line that tells a test to take its reading. */
    setvbuf(stdin, NULL, _IONBF, 0);
    if (argc != 4) return 2;
    const int fds = atoi(argv[1]), mib = atoi(argv[2]), sleeps = atoi(argv[3]);
    for (int i = 0; i < fds; ++i)
        if (open("/dev/null", O_RDONLY) < 0) return 1;
    char* p = malloc((size_t)mib << 20);
    if (!p) return 1;
    memset(p, 1, (size_t)mib << 20);
    for (int i = 0; i < sleeps; ++i) usleep(1000);
    printf("ready\n");
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin)) return 0;
    return p[12345] == 1 ? 0 : 1;
}
