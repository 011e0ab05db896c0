/* A multi-threaded program forks; the child allocates, then enters a new
   user namespace (as container runtimes and sandboxes do in their child). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void* idle(void* a) { pause(); return a; }
int main(void) {
    pthread_t t; pthread_create(&t, 0, idle, 0);
    pid_t c = fork();
    if (c == 0) {
        char* volatile s = malloc(100); free(s);
        if (unshare(CLONE_NEWUSER) != 0) { perror("child: unshare(CLONE_NEWUSER)"); _exit(1); }
        _exit(0);
    }
    int st; waitpid(c, &st, 0);
    puts(WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "FAIL");
    return WIFEXITED(st) ? WEXITSTATUS(st) : 2;
}
