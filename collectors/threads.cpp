// The threads family: /sched/threads/*, and the stacks of those threads as
// /memory/classes/os-stacks:bytes.
#include "threads.h"

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "catalog.h"
#include "kept_file.h"
#include "proc.h"
#include "procfs.h"
#include "agent_facts.h"

namespace gometrics::collect {

namespace {

// Whether the publisher thread is a live task of this process: the kernel's
// thread count includes it until it is reaped, even after it was joined. A
// confined program's filter may forbid the probe: it runs until exit then.
bool publisher_alive() {
    const int tid = agent::publisher_tid();
    return tid > 0 && (sys::confined() || syscall(SYS_tgkill, sys::self_pid(), tid, 0) == 0);
}

uint64_t count_live(const Snapshot& s) {
    const procfs::SelfStatus& st = procfs::self_status(s);
    if (!st.ok) return 0;
    const uint64_t agent_threads = publisher_alive() ? 1 : 0;
    return st.threads > agent_threads ? st.threads - agent_threads : 0;
}

PerSnapshot<uint64_t, count_live> g_live;

uint64_t default_stack_size() {
    // An attribute with no stack size set reports the process default
    // (what pthread_create would use), without copying the default's cpuset.
    pthread_attr_t a;
    if (pthread_attr_init(&a) != 0) return 0;
    size_t size = 0;
    (void)pthread_attr_getstacksize(&a, &size);
    pthread_attr_destroy(&a);
    return size;
}

void threads_total(const Snapshot& s, uint64_t* out) { *out = live_threads(s); }
void threads_created(const Snapshot&, uint64_t* out) {
    const agent::ThreadCounts c = agent::thread_counts();
    *out = c.started - c.started_before_attach;
}
void os_stacks(const Snapshot& s, uint64_t* out) { *out = os_stack_bytes(s); }

using layout::kKindUint64;

constexpr Metric kThreads[] = {
    {"/memory/classes/os-stacks:bytes", kKindUint64, false, kAggSum,
     "Stack memory of live threads: each stack size the program asked for, the default stack size for threads the "
     "agent did not see start (the main thread included); reserved, not necessarily resident.",
     os_stacks, {}, procfs::status_readable},
    {"/sched/threads-created:threads", kKindUint64, true, kAggSum,
     "Threads started with pthread_create since the agent loaded (or was attached).", threads_created},
    {"/sched/threads/total:threads", kKindUint64, false, kAggSum,
     "Live threads of the process (the kernel's count), the main thread included, the agent's own publisher "
     "thread excluded.",
     threads_total, {}, procfs::status_readable},
};

}  // namespace

uint64_t live_threads(const Snapshot& s) { return g_live.get(s); }

namespace {

// Once per snapshot: /memory/classes/total sums this same value (memory.cpp),
// and thread counts move between two calls.
uint64_t sum_os_stacks(const Snapshot& s) {
    const agent::ThreadCounts c = agent::thread_counts();
    const uint64_t seen = c.started - c.exited;
    const uint64_t live = live_threads(s);
    // Around a creation or an exit the two sources can disagree by a thread
    // for a moment; never let that go negative.
    const uint64_t unseen = live > seen ? live - seen : 0;
    return c.stack_bytes + unseen * default_stack_size();
}

PerSnapshot<uint64_t, sum_os_stacks> g_os_stacks;

}  // namespace

uint64_t os_stack_bytes(const Snapshot& s) { return g_os_stacks.get(s); }

std::span<const Metric> threads_metrics() { return kThreads; }

}  // namespace gometrics::collect
