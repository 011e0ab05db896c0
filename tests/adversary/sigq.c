/* A program sets its SIGSEGV/SIGABRT handlers with glibc calls other than
   sigaction()/signal() and queries them back with sigaction(). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
extern sighandler_t bsd_signal(int, sighandler_t);
static void h(int s) { (void)s; }
int main(void) {
    int bad = 0;
    sighandler_t prev = sigset(SIGSEGV, h);
    struct sigaction old;
    sigaction(SIGSEGV, NULL, &old);
    if (prev != SIG_DFL) { printf("sigset returned %p for the previous SIGSEGV action, expected SIG_DFL\n", (void*)prev); bad++; }
    if (old.sa_handler != h) { printf("sigaction(SIGSEGV) after sigset: handler %p, expected %p\n", (void*)old.sa_handler, (void*)h); bad++; }
    prev = sysv_signal(SIGABRT, h);
    sigaction(SIGABRT, NULL, &old);
    if (prev != SIG_DFL) { printf("sysv_signal returned %p for the previous SIGABRT action, expected SIG_DFL\n", (void*)prev); bad++; }
    if (old.sa_handler != h) { printf("sigaction(SIGABRT) after sysv_signal: handler %p, expected %p\n", (void*)old.sa_handler, (void*)h); bad++; }
    prev = bsd_signal(SIGBUS, h);
    sigaction(SIGBUS, NULL, &old);
    if (prev != SIG_DFL) { printf("bsd_signal returned %p for SIGBUS, expected SIG_DFL\n", (void*)prev); bad++; }
    if (old.sa_handler != h) { printf("sigaction(SIGBUS) after bsd_signal: handler %p, expected %p\n", (void*)old.sa_handler, (void*)h); bad++; }
    siginterrupt(SIGFPE, 1);
    sigaction(SIGFPE, NULL, &old);
    if (old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO)) { printf("SIGFPE after siginterrupt: handler %p flags %#x\n", (void*)old.sa_handler, old.sa_flags); bad++; }
    puts(bad ? "FAIL" : "ok");
    return bad;
}
