/* A single-threaded program publishes lazily: a reader's request is answered
   on the program's own thread, in a hook. Its first thread starts the
   agent's publisher thread. This races the two.
     first_thread REQUEST_OFFSET ROUNDS
   Each round forks a child: single-threaded, so lazy again, with a segment
   of its own from its first allocation. The child starts its first thread,
   asks for a snapshot as a reader would (it bumps its segment's request
   word, at byte REQUEST_OFFSET) and at once allocates a block that makes
   its hook call out: its main thread answers the request (half a
   millisecond) while the new thread starts the publisher thread. The child
   then looks for that thread ("gometrics" in /proc/self/task) for up to a
   second, and exits 0 if it found it.
   Prints "rounds=R without=W": W children found none. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void* worker(void* arg) {
    for (int i = 0; i < 100; ++i) free(malloc(64));
    return arg;
}

static int has_publisher_thread(void) {
    DIR* d = opendir("/proc/self/task");
    if (!d) return 0;
    int found = 0;
    for (struct dirent* e; !found && (e = readdir(d));) {
        char path[64], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        ssize_t n = read(fd, comm, sizeof comm - 1);
        close(fd);
        found = n > 0 && !strncmp(comm, "gometrics\n", 10);
    }
    closedir(d);
    return found;
}

static int child(long request_offset) {
    free(malloc(64));  /* the child's segment, from its first counted call */
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/gometrics.%d", getpid());
    int fd = open(path, O_RDWR);
    if (fd < 0) return 2;
    unsigned char* seg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (seg == MAP_FAILED) return 2;
    /* While a lazy publisher waits, the hooks call out every 256 KiB of
       blocks beyond the small sizes: from here on, at every one of these. */
    for (int i = 0; i < 4; ++i) free(malloc(300 * 1024));
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0) return 2;
    /* The new thread is on its way to start the publisher thread; main
       answers a request meanwhile, in the next hook. */
    atomic_fetch_add((_Atomic unsigned*)(seg + request_offset), 1);
    free(malloc(300 * 1024));
    pthread_join(t, NULL);
    int found = 0;
    for (int i = 0; i < 100 && !(found = has_publisher_thread()); ++i) {
        const struct timespec ms = {0, 10 * 1000 * 1000};
        nanosleep(&ms, NULL);
    }
    unlink(path);  /* _exit leaves it */
    return found ? 0 : 1;
}

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: first_thread REQUEST_OFFSET ROUNDS\n");
        return 2;
    }
    const long request_offset = atol(argv[1]);
    const int rounds = atoi(argv[2]);
    int without = 0;
    for (int r = 0; r < rounds; ++r) {
        pid_t pid = fork();
        if (pid == 0) _exit(child(request_offset));
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) == 2) {
            fprintf(stderr, "child %d failed\n", pid);
            return 2;
        }
        without += WEXITSTATUS(st) == 1;
    }
    printf("rounds=%d without=%d\n", rounds, without);
    return 0;
}
