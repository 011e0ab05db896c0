// Start-up, fork and exit of the agent in the host process.
#include "agent.h"
#include "attach.h"

#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>
#include <time.h>
#include <sys/single_threaded.h>
#include <valgrind/valgrind.h>

#include <atomic>
#include <cstdlib>
#include <cerrno>
#include <cstring>

#include "catalog.h"
#include "clocks.h"
#include "crash.h"
#include "log.h"
#include "proc.h"
#include "profile.h"
#include "publisher.h"
#include "real.h"
#include "slots.h"
#include "thread_state.h"
#include "trace.h"

namespace gometrics::agent {

namespace {

constinit std::atomic<bool> g_said_not_interposed{false};

// Whether the program's malloc reaches our hook, judged by calling it: the
// address dlsym(RTLD_DEFAULT) gives is the program's malloc, and for a
// non-PIE executable that takes its address it is a PLT entry in the
// executable that still jumps to us. Only an allocator of the program's own
// (statically linked) never comes here. Runs under the constructor's Guard.
bool detect_interposition() {
    using Malloc = void* (*)(size_t);
    using Free = void (*)(void*);
    auto* their_malloc = reinterpret_cast<Malloc>(dlsym(RTLD_DEFAULT, "malloc"));
    auto* their_free = reinterpret_cast<Free>(dlsym(RTLD_DEFAULT, "free"));
    if (!their_malloc || !their_free) return true;
    ThreadSlot* const saved = detail::tls_slot;
    detail::tls_slot = detail::marker(detail::kProbe);
    void* p = their_malloc(24);
    const bool reached = detail::tls_slot != detail::marker(detail::kProbe);
    detail::tls_slot = saved;  // the Guard's marker: the free below is not counted
    their_free(p);
    return reached;
}

uint64_t realtime_ns() { return sys::clock_ns(CLOCK_REALTIME); }

// The pid the agent started in, or restarted in after a fork through the
// handlers (-1 until then: no system call in the child's handler): a
// process whose pid differs was made without them.
constinit int g_own_pid = -1;

void restart_after_fork() noexcept {
    // A child of a program that confined itself may not open files: it is
    // counted, unpublished.
    if (detail::g_restart_pending.exchange(false, std::memory_order_relaxed) && !collect::confined_now()) {
        g_own_pid = sys::self_pid();
        detail::g_start_time_ns = realtime_ns();
        publisher_start();
        if (attach::active()) publisher_mark_attached();  // a child of an attached process counts as attached
    }
}

void before_fork() {
    profile::before_fork();
    slots_before_fork();
}

void after_fork_parent() {
    slots_after_fork_parent();
    profile::after_fork_parent();
}

void on_fork_child() {
    // Trivial on purpose (no locks, no allocation, no system call): the
    // child has one thread and our state may have been mid-update in
    // others. Publication restarts at the child's first counted call.
    g_own_pid = -1;
    real_after_fork_child();
    profile::after_fork_child();
    retire_slots_after_fork();
    attach::after_fork_child();
    detail::threads_after_fork();
    publisher_forget_after_fork();
    collect::drop_files_after_fork();  // the parent's /proc files; the child keeps its own at restart
    detail::g_restart_pending.store(true, std::memory_order_relaxed);
}

}  // namespace

}  // namespace gometrics::agent

using namespace gometrics::agent;

static bool start_under_guard(bool late);

[[gnu::constructor]] static void gometrics_start() {
    // Loaded into a running process by `gometrics-cli attach` (attach.cpp):
    // the hooks are reached only once the GOT entries point at them, the
    // publisher thread starts at once, and the program's signal actions are
    // left alone.
    const bool late = attach::loaded_late();
    if (late && attach::refusal()) return;  // inert: nothing points at its hooks
    Guard guard;
    const bool published = start_under_guard(late);
    adopt_shared_slot(guard.saved());  // this thread's counts from before now, into the segment
    // Attached without a segment, the agent stays inert: nobody could read
    // what it counted, and the CLI says so.
    if (late && !published) return;
    if (late) attach::begin();
    publisher_begin(late || !__libc_single_threaded);
    if (!late) crash_install();
}

static bool start_under_guard(bool late) {
    (void)real();
    if (!late) switch_allocator_if_asked();  // GOMETRICS_ALLOCATOR=jemalloc, while we are the only thread
    detail::g_start_time_ns = realtime_ns();
    (void)config();  // the environment, parsed now if no hook needed it before
    trace_configure();
    if (trace_enabled()) detail::g_config.eager_publisher = true;  // a line per interval needs the thread
    detail::g_interposed = late ? attach::prepare() : detect_interposition();
    if (!detail::g_interposed)
        log::once(g_said_not_interposed,
                  {"malloc is not interposed (",
                   RUNNING_ON_VALGRIND ? "valgrind serves every malloc itself"
                                       : "the program has its own, statically linked?",
                   "): heap metrics are off"});
    detail::g_restart_hook = restart_after_fork;
    if (!gometrics::collect::confined_now()) g_own_pid = gometrics::sys::self_pid();
    pthread_atfork(before_fork, after_fork_parent, on_fork_child);
    const bool published = publisher_create(late);
    if (late) publisher_mark_attached();
    return published;
}

[[gnu::destructor]] static void gometrics_stop() {
    if (attach::detached()) return;
    // A child of a raw clone() ran no fork handler: it still holds its
    // parent's segment and would wait for its parent's publisher thread.
    // Asked only where the program allows the system call.
    if (g_own_pid > 0 && !gometrics::collect::confined_now() && gometrics::sys::self_pid() != g_own_pid) on_fork_child();
    publisher_shutdown();
}

// _Fork (glibc 2.34): fork without the atfork handlers, safe in a signal
// handler. Its child must still leave its parent's segment, so the child
// half of ours runs; the prepare half, which waits for other threads'
// stacks, does not (a child that finds one under way takes no stacks).
extern "C" [[gnu::visibility("default")]] pid_t _Fork() noexcept {
    const pid_t pid = real()._Fork();
    if (pid == 0) {
        const int saved_errno = errno;
        on_fork_child();
        errno = saved_errno;
    }
    return pid;
}
