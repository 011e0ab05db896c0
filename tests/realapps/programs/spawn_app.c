/* posix_spawn and vfork+exec from a process that allocates: each child is
   /bin/echo, whose output goes to our stdout; the parent checks every exit
   status. Prints "spawned=N" at the end.
     spawn_app ROUNDS */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

static int wait_ok(pid_t pid) {
    int st;
    return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* vfork in a function of its own: the child shares our stack until execve. */
__attribute__((noinline)) static pid_t vfork_exec(char** child_argv) {
    pid_t pid = vfork();
    if (pid == 0) {
        execve("/bin/echo", child_argv, environ);
        _exit(127);
    }
    return pid;
}

int main(int argc, char** argv) {
    const int rounds = argc > 1 ? atoi(argv[1]) : 5;
    int spawned = 0;
    for (int r = 0; r < rounds; ++r) {
        char* keep = malloc(1000); /* the parent keeps allocating around the spawns */
        char arg[32];
        snprintf(arg, sizeof arg, "spawn-%d", r);
        char* spawn_argv[] = {"echo", arg, NULL};
        fflush(stdout);
        pid_t pid;
        if (posix_spawn(&pid, "/bin/echo", NULL, NULL, spawn_argv, environ) != 0 || !wait_ok(pid)) {
            fprintf(stderr, "posix_spawn round %d failed\n", r);
            return 1;
        }
        ++spawned;
        snprintf(arg, sizeof arg, "vfork-%d", r);
        char* vfork_argv[] = {"echo", arg, NULL};
        fflush(stdout);
        pid = vfork_exec(vfork_argv);
        if (pid < 0 || !wait_ok(pid)) {
            fprintf(stderr, "vfork round %d failed\n", r);
            return 1;
        }
        ++spawned;
        free(keep);
    }
    printf("spawned=%d\n", spawned);
    return 0;
}
