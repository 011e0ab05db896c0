// pthread_create, interposed: the start routine is wrapped so the agent
// sees each thread begin and end, however it ends (return, pthread_exit,
// cancellation), with the stack size its attributes asked for.
//
// The end is seen by a pthread key destructor, not by code after the start
// routine returns or by a cleanup handler: glibc runs key destructors on
// every way out of a thread, including a pthread_exit or a cancellation
// unwinding through frames without unwind tables.
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "publisher.h"
#include "real.h"
#include "slots.h"
#include "thread_state.h"

#define GOMETRICS_EXPORT extern "C" [[gnu::visibility("default")]]

namespace gometrics::agent {
namespace {

using namespace detail;

// What the wrapper needs in the new thread. The agent's own allocation:
// made with the real malloc, so it never reaches the program's counts.
struct Start {
    void* (*routine)(void*);
    void* arg;
    uint64_t stack_bytes;
};

pthread_key_t g_exit_key;
pthread_once_t g_exit_key_once = PTHREAD_ONCE_INIT;
constinit bool g_have_exit_key = false;

// The thread's end: count it out. (Its scheduling statistics since the last
// snapshot are not read here: opening its /proc file on the program's thread
// would take a descriptor while the program's other threads run, and may be
// what a seccomp filter forbids.)
void thread_ended(void* p) {
    const int saved_errno = errno;
    auto* start = static_cast<Start*>(p);
    g_thread_stack_bytes.fetch_sub(start->stack_bytes, std::memory_order_relaxed);
    // Release: a snapshot that sees this exit also sees the stack go.
    g_threads_exited.fetch_add(1, std::memory_order_release);
    tls_seen_stack_plus_one = 0;
    g_real.free(start);
    errno = saved_errno;
}

void create_exit_key() { g_have_exit_key = pthread_key_create(&g_exit_key, thread_ended) == 0; }

void* wrapped_start(void* p) {
    auto* start = static_cast<Start*>(p);
    void* (*routine)(void*) = start->routine;
    void* arg = start->arg;
    int rc;
    {
        InterruptionsHeld held;  // a handler's allocation in here is the program's
        Guard guard;       // a key past the first 32 makes glibc calloc a block: ours, not the program's
        rc = pthread_setspecific(g_exit_key, start);
    }
    if (rc == 0) {
        // Counted in here, on the thread itself, so it is counted in before
        // it can be counted out, and a failed pthread_create counts nothing.
        g_thread_stack_bytes.fetch_add(start->stack_bytes, std::memory_order_relaxed);
        g_threads_started.fetch_add(1, std::memory_order_release);
        tls_seen_stack_plus_one = start->stack_bytes + 1;
    } else {
        g_real.free(start);  // its end would go unseen: leave it uncounted, as a thread we never saw
    }
    // The program has a thread of its own now (glibc's single-thread fast
    // paths are gone anyway): the publisher thread may start, from this one
    // while it lives, so that a limit on tasks (RLIMIT_NPROC) with room for
    // the program's threads and no more refuses ours, however soon the
    // program's thread ends. Not cancellable meanwhile: a cancel sent at
    // once must find the routine, as it would without us.
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    publisher_start_thread_if_lazy();
    pthread_setcancelstate(cancel_state, nullptr);
    return routine(arg);
}

// The stack size a thread created with `attr` gets: the attribute's, or the
// process default. A stack the program
// supplies (pthread_attr_setstack) is its own memory: counted as 0 here.
uint64_t stack_bytes_of(const pthread_attr_t* attr) {
    pthread_attr_t defaults;
    if (!attr) {
        if (pthread_attr_init(&defaults) != 0) return 0;
        attr = &defaults;
    }
    // glibc's pthread_attr_getstack reports the stack's low end as the set
    // top minus the size; with no stack supplied the top is null, so the
    // two add up to 0. (pthread_attr_getstackaddr says it directly, but is
    // deprecated with a link-time warning.)
    void* low = nullptr;
    size_t size = 0;
    (void)pthread_attr_getstack(attr, &low, &size);
    const bool supplied = reinterpret_cast<uintptr_t>(low) + size != 0;
    if (!supplied) (void)pthread_attr_getstacksize(attr, &size);  // an unset size reads as the default
    else size = 0;
    if (attr == &defaults) pthread_attr_destroy(&defaults);
    return size;
}

}  // namespace
}  // namespace gometrics::agent

using namespace gometrics::agent;

GOMETRICS_EXPORT int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*routine)(void*),
                                    void* arg) noexcept {
    const RealFunctions& r = real();
    // The agent's own threads (created under a Guard) are not the program's.
    if (reinterpret_cast<uintptr_t>(tls_slot) == kAgentThread) return r.pthread_create(thread, attr, routine, arg);
    pthread_once(&g_exit_key_once, create_exit_key);
    auto* start = g_have_exit_key ? static_cast<Start*>(r.malloc(sizeof(Start))) : nullptr;
    if (!start) return r.pthread_create(thread, attr, routine, arg);  // unseen: still in the kernel's count
    *start = {routine, arg, stack_bytes_of(attr)};
    const int rc = r.pthread_create(thread, attr, wrapped_start, start);
    const int saved_errno = errno;
    if (rc != 0) r.free(start);
    errno = saved_errno;
    return rc;
}
