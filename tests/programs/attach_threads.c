/* Threads in a tight malloc/free and lock loop while the main thread is
   blocked in read() on stdin, for attach/detach cycles (test_attach.py).
   argv[1]: threads. With "bursts" (argv[2]) each thread instead keeps
   starting bursts of 8 short-lived threads that allocate and end, as a
   server's pool does, and so does the main thread between its reads.
   With "mainexit" a thread serves stdin and the main thread ends at once
   (pthread_exit), as some servers' do. "stop" on stdin joins them and prints the loop count,
   then the program waits for stdin to close;
   a read that fails with EINTR is reported (exit 3). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static volatile int stop;
static unsigned long long total;

static void* worker(void* arg) {
    unsigned seed = (unsigned)(size_t)arg;
    void* held[16] = {0};
    while (!stop) {
        for (int i = 0; i < 16; ++i) {
            seed = seed * 1103515245u + 12345u;
            free(held[i]);
            held[i] = malloc(8 + (seed >> 16) % 3000);
        }
        pthread_mutex_lock(&lock);
        ++total;
        pthread_mutex_unlock(&lock);
    }
    for (int i = 0; i < 16; ++i) free(held[i]);
    return NULL;
}

static void* short_lived(void* arg) {
    void* volatile p[50];
    for (int i = 0; i < 50; ++i) p[i] = malloc(64 + (size_t)i);
    for (int i = 0; i < 50; ++i) free(p[i]);
    return arg;
}

static void burst(void) {
    pthread_t t[8];
    int started = 0;
    for (; started < 8 && pthread_create(&t[started], NULL, short_lived, NULL) == 0; ++started) {
    }
    for (int i = 0; i < started; ++i) pthread_join(t[i], NULL);
    pthread_mutex_lock(&lock);
    ++total;
    pthread_mutex_unlock(&lock);
}

static void* starter(void* arg) {
    while (!stop) burst();
    return arg;
}

static int n;
static pthread_t t[64];
static int bursts;

/* Serves stdin until "stop", joins the threads; the program's exit status. */
static int serve(void) {
    char out[64];
    snprintf(out, sizeof out, "ready %d\n", (int)getpid());
    if (write(1, out, strlen(out)) < 0) return 1;
    char line[16];
    size_t len = 0;
    /* With bursts the main thread starts them too, between looks at stdin:
       it is seldom found blocked in a call, as a busy server's is not. */
    if (bursts) fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    for (;;) {
        char c;
        ssize_t r = read(0, &c, 1);
        if (r < 0 && errno == EAGAIN) {
            burst();
            continue;
        }
        if (r < 0 && errno == EINTR) {
            if (write(1, "EINTR\n", 6) < 0) return 1;
            _exit(3);
        }
        if (r <= 0) break;
        if (c != '\n') {
            if (len + 1 < sizeof line) line[len++] = c;
            continue;
        }
        line[len] = 0;
        len = 0;
        if (!strcmp(line, "stop")) break;
    }
    stop = 1;
    for (int i = 0; i < n; ++i) pthread_join(t[i], NULL);
    if (bursts) fcntl(0, F_SETFL, fcntl(0, F_GETFL) & ~O_NONBLOCK);
    snprintf(out, sizeof out, "loops %llu\n", total);
    if (write(1, out, strlen(out)) < 0) return 1;
    while (read(0, &line[0], 1) > 0) {  /* until stdin closes: the counts stay readable */
    }
    return 0;
}

static void* serve_and_exit(void* arg) {
    exit(serve());
    return arg;
}

int main(int argc, char** argv) {
    n = argc > 1 ? atoi(argv[1]) : 8;
    if (n > 64) n = 64;
    bursts = argc > 2 && !strcmp(argv[2], "bursts");
    for (int i = 0; i < n; ++i) pthread_create(&t[i], NULL, bursts ? starter : worker, (void*)(size_t)(i + 1));
    if (argc > 2 && !strcmp(argv[2], "mainexit")) {
        pthread_t server;
        if (pthread_create(&server, NULL, serve_and_exit, NULL) != 0) return 1;
        pthread_exit(NULL);
    }
    return serve();
}
