// The publisher thread and the exit path; see publisher.h.
//
// Exactly one thread writes the segment at a time (the seqlock's single
// writer): the publisher thread while it runs, then the exit path once the
// publisher has been joined. A publisher that cannot be joined in time means
// no final snapshot, never two writers.
#include "publisher.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <sys/single_threaded.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <memory>
#include <new>

#include "agent.h"
#include "attach.h"
#include "catalog.h"
#include "clocks.h"
#include "kept_file.h"
#include "log.h"
#include "proc.h"
#include "profile.h"
#include "profile_report.h"
#include "real.h"
#include "report.h"
#include "slots.h"
#include "thread_state.h"
#include "trace.h"
#include "writer.h"

namespace gometrics::agent {

namespace {

using collect::kMaxMetrics;

// Publisher state. Written by publisher_start() (before the thread exists)
// and by the single writer afterwards.
struct State {
    ipc::SegmentWriter writer;
    const collect::Metric* metrics[kMaxMetrics];
    // Made entry by entry as the table is built: an array's constructor would
    // write every entry, fresh pages that no table this size uses.
    union Specs {
        Specs() {}
        ipc::MetricSpec at[kMaxMetrics];
    } specs;
    size_t word_offset[kMaxMetrics];
    size_t count = 0;
    uint64_t* words = nullptr;  // private buffer, payload_words() long
    uint64_t* remainder = nullptr;  // the fold's remainder (layout::LiveHeader), as long
    size_t words_bytes = 0;
    // The fold terms, in pass order: built in the segment (write_terms),
    // read back from there; 0 and null without one.
    const layout::FoldTerm* terms = nullptr;
    size_t term_count = 0;
    size_t terms_built = 0;  // how many the metrics give (count_terms), 0 if they do not fit
    static constexpr size_t kPasses = 4, kSlotWords = sizeof(ThreadSlot) / 8;
    size_t pass_terms[kPasses] = {};  // of which each pass's
    // The distinct slot words of each pass, for the slot copies.
    uint16_t pass_words[kPasses][kSlotWords];
    uint32_t pass_word_count[kPasses];
    ThreadSlot* copies = nullptr;  // grows with the shared slots in use
    ThreadSlot private_sum;        // the private slots' folded words, summed
    size_t copies_capacity = 0;
    uint64_t seq = 0;
    // Set by whichever thread starts ours; read by the exiting main thread.
    std::atomic<bool> thread_started{false};
    pthread_t thread{};
    uint32_t lazy_request = 0;  // the request word when the lazy publisher began waiting
};

constinit State* g_state = nullptr;  // in an anonymous mapping: no static destructor, no malloc
constinit sys::KeptFile g_shm_dir;  // /dev/shm, to remove the segment after a chroot
constinit std::atomic<bool> g_stop{false};
// Held by whoever computes a snapshot: the publisher thread, a program's
// thread answering a reader without it (lazy), or the crash handler, which
// then keeps it (the thread must not write after it).
constinit std::atomic<bool> g_computing{false};
// 0: no lazy publisher pending; 1: pending; 2: a thread is starting it.
constinit std::atomic<int> g_lazy{0};
constinit std::atomic<bool> g_said_no_segment{false};
constinit std::atomic<bool> g_said_no_thread{false};
constinit std::atomic<bool> g_said_no_profile_pages{false};
constinit std::atomic<bool> g_profile_confined{false};  // the profile's pages can no longer be reserved
constinit std::atomic<bool> g_thread_refused{false};
// The publisher thread has its descriptor table (or gave up on one): the
// thread that started it waits for that, so the copy still holds every kept
// descriptor whatever the program closes next.
constinit std::atomic<uint32_t> g_table_taken{0};  // pthread_create failed for ours: never asked again

constexpr uint32_t kSharedSlots = 256;  // threads at once with a slot readers fold; more count privately
constexpr uint32_t kCopiesSpare = 8;     // slot copies beyond those claimed: threads that start mid-snapshot
constexpr size_t kMaxTerms = 8192;

// The live region's slots, for slots.cpp.
// Reserving is a fallocate (and an mmap for a chunk's first slot), which a
// filter the program installed by a raw system call (unseen by the seccomp
// hooks) may kill: status says, read with pread alone. Then the claiming
// thread, and every later one, counts privately. A pread per shared slot
// claimed (256 at most).
void* reserve_slot(uint32_t i) noexcept {
    return collect::confined_now() ? nullptr : g_state->writer.reserve_slot(i);
}
void slot_used(uint32_t i) noexcept { g_state->writer.slot_used(i); }
void* slot_address(uint32_t i) noexcept { return g_state->writer.slot_address(i); }
constinit const SharedSlots kShared{reserve_slot, slot_used, slot_address, kSharedSlots};

// Collects the metrics' fold terms (collect::FoldSink) at their words, in
// two runs over the same metrics: the first (count_terms, at start-up)
// counts each pass's terms and notes the slot words each pass reads; the
// second (write_terms, at each segment's creation) writes each term at its
// pass's next place in the segment. So the table is in pass order, each
// pass's terms in the order they came, and exists only in the segment.
struct TermSink final : collect::FoldSink {
    State& st;
    layout::FoldTerm* out = nullptr;  // null: counting
    size_t base = 0;
    bool overflow = false;
    size_t count[State::kPasses] = {};
    size_t next[State::kPasses] = {};
    static constexpr size_t kSeenWords = (State::kSlotWords + 63) / 64;
    uint64_t (*seen)[kSeenWords] = nullptr;  // counting: each pass's slot words noted so far
    explicit TermSink(State& s) : st(s) {}
    void add(uint32_t word, uint32_t slot_word, uint8_t pass, bool is_float, uint64_t weight) {
        if (pass >= State::kPasses || slot_word >= State::kSlotWords) {
            overflow = true;
            return;
        }
        if (out) {
            out[next[pass]++] = {static_cast<uint32_t>(base + word), slot_word, pass, is_float, 0, 0, weight};
            return;
        }
        ++count[pass];
        if (!(seen[pass][slot_word / 64] >> (slot_word % 64) & 1)) {
            seen[pass][slot_word / 64] |= uint64_t{1} << (slot_word % 64);
            st.pass_words[pass][st.pass_word_count[pass]++] = static_cast<uint16_t>(slot_word);
        }
    }
    void term(uint32_t word, uint32_t slot_word, uint8_t pass, int64_t weight) override {
        add(word, slot_word, pass, false, static_cast<uint64_t>(weight));
    }
    void term_f(uint32_t word, uint32_t slot_word, uint8_t pass, double weight) override {
        add(word, slot_word, pass, true, std::bit_cast<uint64_t>(weight));
    }
    void run() {
        for (size_t i = 0; i < st.count; ++i) {
            if (!st.metrics[i]->fold) continue;
            base = st.word_offset[i];
            st.metrics[i]->fold(*this);
        }
    }
};

// The fold's remainder: each folded value less what the copied slots gave
// it in this snapshot, in the terms' own arithmetic (int64 wrapping, or
// double). A reader adds the shared slots as they are then; those that were
// not copied (no room) it adds whole, as the values lack them. Term by term:
// each is read once from the segment, which others can write (a word out of
// range is passed over, never followed), and its slot word summed over the
// copies; a float term subtracts slot by slot, in the slots' order.
void compute_remainder(State& st) {
    uint64_t* const remainder = st.remainder;
    std::memcpy(remainder, st.words, st.words_bytes);
    // Locals: stores to the remainder could otherwise alias them.
    const auto* const slots = reinterpret_cast<const uint64_t*>(detail::g_snapshot_slots.slots);
    const uint32_t count = detail::g_snapshot_slots.count;
    if (!count) return;  // no shared slot copied: the values are the remainder
    constexpr size_t kStride = sizeof(ThreadSlot) / 8;
    const size_t words = st.words_bytes / 8;
    const layout::FoldTerm* const terms = st.terms;
    for (size_t t = 0, n = st.term_count; t < n; ++t) {
        // The two words that index, loaded once each (another process may
        // write them meanwhile), then checked.
        const uint32_t value_word = __atomic_load_n(&terms[t].value_word, __ATOMIC_RELAXED);
        const uint32_t slot_word = __atomic_load_n(&terms[t].slot_word, __ATOMIC_RELAXED);
        if (value_word >= words || slot_word >= State::kSlotWords) [[unlikely]]
            continue;
        const uint64_t weight = terms[t].weight;
        const uint64_t* w = slots + slot_word;
        const uint64_t* const end = w + count * kStride;
        if (terms[t].is_float) {
            double d = std::bit_cast<double>(remainder[value_word]);
            do d -= double(*w) * std::bit_cast<double>(weight);
            while ((w += kStride) != end);
            remainder[value_word] = std::bit_cast<uint64_t>(d);
        } else {
            uint64_t sum = *w;  // count >= 1: one thread's slot is the common case
            while ((w += kStride) != end) sum += *w;
            remainder[value_word] -= sum * weight;
        }
    }
}

void build_table(State& st) {
    size_t words = 0;
    for (const collect::Metric* m : collect::catalog()) {
        if (m->available && !m->available()) continue;
        if (st.count == kMaxMetrics) break;
        st.metrics[st.count] = m;
        std::construct_at(&st.specs.at[st.count],
                          ipc::MetricSpec{m->name, m->description, m->kind, m->cumulative, m->bounds, m->aggregation});
        st.word_offset[st.count] = words;
        words += ipc::value_words(st.specs.at[st.count]);
        ++st.count;
    }
}

// How many fold terms the metrics give, and each pass's slot words. A
// table that does not fit (never, with today's metrics) publishes no live
// region.
void count_terms(State& st) {
    TermSink sink(st);
    uint64_t seen[State::kPasses][TermSink::kSeenWords] = {};  // bits: this may run on a small stack
    sink.seen = seen;
    sink.run();
    size_t total = 0;
    for (size_t p = 0; p < State::kPasses; ++p) total += st.pass_terms[p] = sink.count[p];
    st.terms_built = sink.overflow || total > kMaxTerms ? 0 : total;
    if (!st.terms_built) std::fill(std::begin(st.pass_word_count), std::end(st.pass_word_count), 0u);
}

// The terms, in pass order, at `out` in a new segment (LiveSpec::fill_terms).
void write_terms(void* ctx, layout::FoldTerm* out) noexcept {
    State& st = *static_cast<State*>(ctx);
    TermSink sink(st);
    sink.out = out;
    size_t at = 0;
    for (size_t p = 0; p < State::kPasses; ++p) {
        sink.next[p] = at;
        at += st.pass_terms[p];
    }
    sink.run();
    st.terms = out;
    st.term_count = st.terms_built;
}

// Reads the shared slots once, pass by pass (every word of pass 0 of every
// slot before any of pass 1: the order that keeps frees <= allocs), into
// private copies that the collectors and the remainder then use. A slot
// claimed during the passes joins at the pass that first sees it, its
// earlier passes' words taken as 0: it held nothing when they were read, so
// no free is read without its block's allocation. Slots beyond the copies'
// room (no memory for more) are left out of the values and the remainder
// alike; a reader's fold still adds them.
void take_slot_copies(State& st) {
    if (!st.term_count) return;  // no fold: the collectors read the live slots
    const SharedSlots* sh = detail::g_shared.load(std::memory_order_acquire);
    const auto claimed = [&] {
        return sh ? std::min<uint32_t>(detail::g_shared_claimed.load(std::memory_order_acquire), sh->count) : 0;
    };
    uint32_t n = claimed();
    if (sh && n + kCopiesSpare > st.copies_capacity) {
        const size_t want = std::max<size_t>(n + kCopiesSpare, 2 * st.copies_capacity), bytes = want * sizeof(ThreadSlot);
        void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m != MAP_FAILED) {
            if (st.copies) munmap(st.copies, st.copies_capacity * sizeof(ThreadSlot));
            st.copies = static_cast<ThreadSlot*>(m);
            st.copies_capacity = want;
        }
    }
    auto* sum = reinterpret_cast<uint64_t*>(&st.private_sum);
    uint32_t seen = 0;
    for (size_t p = 0; p < State::kPasses; ++p) {
        n = std::min<uint32_t>(claimed(), uint32_t(st.copies_capacity));
        for (uint32_t i = seen; i < n; ++i) {
            auto* to = reinterpret_cast<uint64_t*>(&st.copies[i]);
            for (size_t q = 0; q < p; ++q)
                for (uint32_t k = 0; k < st.pass_word_count[q]; ++k) to[st.pass_words[q][k]] = 0;
        }
        seen = std::max(seen, n);
        for (uint32_t i = 0; i < seen; ++i) {
            const auto* from = static_cast<const uint64_t*>(sh->address(i));
            auto* to = reinterpret_cast<uint64_t*>(&st.copies[i]);
            for (uint32_t k = 0; k < st.pass_word_count[p]; ++k) to[st.pass_words[p][k]] = load(from[st.pass_words[p][k]]);
        }
        for (uint32_t k = 0; k < st.pass_word_count[p]; ++k) sum[st.pass_words[p][k]] = 0;
        for_each_private_slot([&](const ThreadSlot& s) {
            const auto* from = reinterpret_cast<const uint64_t*>(&s);
            for (uint32_t k = 0; k < st.pass_word_count[p]; ++k) sum[st.pass_words[p][k]] += load(from[st.pass_words[p][k]]);
        });
    }
    detail::g_snapshot_slots = {st.copies, seen, &st.private_sum};
}

// Whether the profile's records may be written: their pages are reserved
// when the first stack is recorded (most processes never record one), or
// before the program confines itself (publisher_before_confinement); never
// by then, since its filter may kill the call. False with no record yet:
// the header alone is written, and a record made meanwhile waits.
bool profile_records_reserved(State& st) noexcept {
    if (st.writer.profile_reserved()) return true;
    // No record, no segment, or one without a profile region: nothing to write.
    if (!profile::any_records() || !st.writer.profile_region() || g_profile_confined.load(std::memory_order_relaxed))
        return false;
    if (collect::confined_now()) {
        g_profile_confined.store(true, std::memory_order_relaxed);
        log::once(g_said_no_profile_pages, {"the program confined itself before the first profile sample: heap and "
                                            "mutex profiles are not published"});
        return false;
    }
    if (st.writer.reserve_profile()) return true;
    log::once(g_said_no_profile_pages, {"cannot reserve the profile region's pages in /dev/shm (full?): heap and "
                                        "mutex profiles are not published until it can"});
    return false;
}

void compute_and_publish(State& st, bool final = false) {
    collect::Snapshot s{++st.seq, sys::clock_ns(CLOCK_REALTIME), sys::clock_ns(CLOCK_MONOTONIC)};
    take_slot_copies(st);
    for (size_t i = 0; i < st.count; ++i) st.metrics[i]->compute(s, st.words + st.word_offset[i]);
    // The profile first: a reader that asked for a fresh snapshot waits for
    // the values' generation to move, then reads the profile region, which
    // must already be this snapshot's.
    profile::publish(st.writer.profile_region(), profile_records_reserved(st));
    if (st.term_count) compute_remainder(st);
    detail::g_snapshot_slots = {nullptr, 0, nullptr};
    st.writer.publish(st.words, s.seq, s.time_ns, st.term_count ? st.remainder : nullptr);
    trace_snapshot({{st.metrics, st.count}, st.words, {st.word_offset, st.count}, s.time_ns}, config().interval_ms,
                   final);
}

// The last snapshot, with the bit that tells readers it is the last: by the
// sole writer, once the thread is stopped and g_computing held.
void publish_final(State& st) noexcept {
    compute_and_publish(st, true);  // also fills the words when there is no segment
    st.writer.set_state(layout::kStateExited, true);
}

// Takes g_computing (sequentially consistent: see
// publisher_before_confinement). Another thread's snapshot lets go within
// milliseconds, so it is waited for; a crash handler's hold is for good.
bool take_computing() noexcept {
    for (int waited_ms = 0; g_computing.exchange(true); ++waited_ms) {
        if (detail::g_crashing.load(std::memory_order_relaxed) || waited_ms == 200) return false;
        sys::pause_ns(1000000);
    }
    return true;
}

void* publisher_main(void*) {
    mark_agent_thread();
    // First: /sched/threads/total leaves it out, and gometrics-cli never borrows it.
    set_publisher_tid(static_cast<int>(syscall(SYS_gettid)));
    prctl(PR_SET_NAME, "gometrics");  // its own name: pthread_setname_np would open /proc/self/task/N/comm
    // Files this thread opens later (other threads' schedstat) must never
    // take a number the program is about to get.
    const int table_err = sys::confined() ? 0 : sys::take_private_descriptor_table();
    g_table_taken.store(1);
    syscall(SYS_futex, &g_table_taken, FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
    if (table_err)
        log::line({"cannot give the agent's thread descriptors of its own (", strerror(table_err),
                   "): /sched/latencies follows the main thread only"});
    State& st = *g_state;
    uint32_t last_request = st.writer.request();
    while (!g_stop.load(std::memory_order_acquire)) {
        // Never give up the thread for a snapshot taken elsewhere: the one
        // a program's thread was taking for a reader as it started ours.
        if (take_computing()) {
            compute_and_publish(st);
            g_computing.store(false, std::memory_order_release);
        } else if (detail::g_crashing.load(std::memory_order_relaxed)) {
            break;  // a crash handler took over
        }
        // A rescan may mprotect a RELRO page: not under a filter of the program's.
        if (attach::active() && !collect::confined_now()) attach::rescan_on_tick();
        // Sleep until a reader bumps the request word or the interval ends.
        const uint32_t ms = config().interval_ms;
        timespec timeout{ms / 1000, static_cast<long>(ms % 1000) * 1000000L};
        if (st.writer.request() == last_request)
            syscall(SYS_futex, st.writer.request_word(), FUTEX_WAIT, last_request, &timeout, nullptr, 0);
        last_request = st.writer.request();
    }
    return nullptr;
}

// Ours runs under SCHED_OTHER on the main thread's CPUs, whatever the thread
// that starts it runs under (a real-time worker pinned to a CPU of its own
// would never let it run); a program that is real-time throughout gets an
// ordinary publisher on purpose. Only what differs is set.
void schedule_ordinary_on_main_cpus(pthread_attr_t& attr) {
    int policy;
    sched_param param;
    if (pthread_getschedparam(pthread_self(), &policy, &param) == 0 && policy != SCHED_OTHER) {
        const sched_param normal{};
        pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
        pthread_attr_setschedpolicy(&attr, SCHED_OTHER);
        pthread_attr_setschedparam(&attr, &normal);
    }
    cpu_set_t mine, main_thread;
    if (sched_getaffinity(0, sizeof mine, &mine) == 0 &&
        sched_getaffinity(sys::self_pid(), sizeof main_thread, &main_thread) == 0 && !CPU_EQUAL(&mine, &main_thread))
        pthread_attr_setaffinity_np(&attr, sizeof main_thread, &main_thread);
}

bool start_thread(State& st) {
    // All signals blocked (they are the program's, not ours); restored after.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    schedule_ordinary_on_main_cpus(attr);
    g_table_taken.store(0);
    const int rc = real().pthread_create(&st.thread, &attr, publisher_main, nullptr);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (rc != 0) return false;
    // At once: started from a program's thread, the main thread may exit
    // meanwhile, and must stop and join ours before its final snapshot.
    st.thread_started.store(true, std::memory_order_release);
    // Bounded: a thread that cannot get going within a second is not worth
    // holding the program's start for.
    const timespec ms{0, 1000000};
    for (int i = 0; i < 1000 && !g_table_taken.load(); ++i)
        syscall(SYS_futex, &g_table_taken, FUTEX_WAIT_PRIVATE, 0, &ms, nullptr, 0);
    st.writer.set_state(layout::kStatePublisherRunning, true);
    return true;
}

// The state and the values buffer, in anonymous mappings: no malloc, no
// static destructor that could run while the publisher still works.
State* create_state() {
    void* mem = mmap(nullptr, sizeof(State), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return nullptr;
    State* st = new (mem) State;  // default-initialised: the mapping is zero, and untouched pages cost nothing
    build_table(*st);
    size_t words = 0;
    for (size_t i = 0; i < st->count; ++i) words += ipc::value_words(st->specs.at[i]);
    st->words_bytes = (words * 8 + 4095) & ~size_t{4095};
    if (!st->words_bytes) st->words_bytes = 4096;
    // words and remainder: one mapping
    void* w = mmap(nullptr, 2 * st->words_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (w == MAP_FAILED) {
        munmap(mem, sizeof(State));
        return nullptr;
    }
    st->words = static_cast<uint64_t*>(w);
    st->remainder = st->words + st->words_bytes / 8;
    count_terms(*st);
    return st;
}

}  // namespace

void publisher_start() noexcept {
    publisher_create();
    publisher_begin(false);  // a forked child: the forking thread alone
}

bool publisher_create(bool attaching) noexcept {
    InterruptionsHeld held;  // a forked child's restart runs in its first allocation's hook
    Guard guard;
    const int saved_errno = errno;
    g_stop.store(false, std::memory_order_relaxed);
    const sys::KeptFloorHeld floor;  // the files kept below ask RLIMIT_NOFILE once
    collect::keep_files();  // now, on the program's only thread, or never
    if (config().report_path) prepare_report(config().report_path);
    if (!g_state && !(g_state = create_state())) {
        errno = saved_errno;
        return false;
    }
    State& st = *g_state;
    st.seq = 0;
    st.thread_started.store(false, std::memory_order_relaxed);
    (void)g_shm_dir.open(AT_FDCWD, "/dev/shm", O_PATH | O_DIRECTORY);
    trace_restart();
    st.terms = nullptr;  // an earlier segment's (a forked child's parent's) are not ours
    st.term_count = 0;
    const ipc::LiveSpec live{kSharedSlots, sizeof(ThreadSlot), static_cast<uint32_t>(st.terms_built), write_terms, &st};
    const int err = st.writer.create({st.specs.at, st.count}, getpid(), collect::self_start_ticks(), start_time_ns(),
                                     config().interval_ms, profile::region_bytes(), st.terms_built ? &live : nullptr);
    if (err != 0) {
        log::once(g_said_no_segment, {"cannot create /dev/shm segment (", strerror(err),
                                      attaching ? "): attach gives up, nothing is counted"
                                                : "): metrics are counted but not published"});
        errno = saved_errno;
        return false;
    }
    detail::g_publisher_bytes.store(((sizeof(State) + 4095) & ~size_t{4095}) + 2 * st.words_bytes +
                                        st.writer.mapped_bytes(),
                                    std::memory_order_relaxed);
    if (st.writer.slot_count()) attach_shared_slots(&kShared);
    g_profile_confined.store(false, std::memory_order_relaxed);  // a new segment (a forked child's): asked again
    profile::g_record_changed = publisher_profile_changed;
    if (!malloc_interposed()) st.writer.set_state(layout::kStateNotInterposed, true);
    errno = saved_errno;
    return true;
}

void publisher_begin(bool program_has_threads) noexcept {
    if (!g_state || !g_state->writer.ok()) return;
    InterruptionsHeld held;
    Guard guard;  // our own allocations (pthread_create's) are not the program's
    const int saved_errno = errno;
    State& st = *g_state;
    compute_and_publish(st);  // readers never see an empty segment
    if (config().eager_publisher || program_has_threads) {
        if (!start_thread(st))
            log::once(g_said_no_thread, {"cannot start the publisher thread: snapshots are taken when readers ask, "
                                         "on the program's threads"});
    } else {
        st.lazy_request = st.writer.request();
        st.writer.set_state(layout::kStatePublisherLazy, true);
        g_lazy.store(1, std::memory_order_release);
    }
    errno = saved_errno;
}

void publisher_start_thread_if_lazy() noexcept {
    int pending = 1;
    if (g_lazy.load(std::memory_order_acquire) != 1 || g_thread_refused.load(std::memory_order_relaxed) ||
        !g_lazy.compare_exchange_strong(pending, 2))
        return;
    InterruptionsHeld held;  // a handler's allocation meanwhile is the program's
    Guard guard;
    const int saved_errno = errno;
    State& st = *g_state;
    // A program that confined itself may forbid what starting a thread does.
    if (!collect::confined_now() && start_thread(st)) {
        st.writer.set_state(layout::kStatePublisherLazy, false);
        g_lazy.store(0, std::memory_order_release);
    } else {
        // RLIMIT_NPROC, say: stay without a thread, answering on the program's.
        g_thread_refused.store(true, std::memory_order_relaxed);
        log::once(g_said_no_thread, {"cannot start the publisher thread: snapshots are taken when readers ask, "
                                     "on the program's threads"});
        g_lazy.store(1, std::memory_order_release);
    }
    errno = saved_errno;
}

// A reader asked and no thread of ours answers: the program's own thread
// takes the snapshot, here in a cold path of a hook (the counts readers fold
// themselves; this refreshes the rest).
void snapshot_inline(State& st) noexcept {
    if (g_computing.exchange(true)) return;  // another thread is at it
    InterruptionsHeld held;
    Guard guard;
    const int saved_errno = errno;
    st.lazy_request = st.writer.request();
    compute_and_publish(st);
    g_computing.store(false, std::memory_order_release);
    errno = saved_errno;
}

void publisher_poll() noexcept {
    if (g_lazy.load(std::memory_order_acquire) != 1) return;
    State& st = *g_state;
    if (st.writer.request() != st.lazy_request) snapshot_inline(st);
}

void publisher_profile_changed(uint32_t record) noexcept {
    if (g_lazy.load(std::memory_order_acquire) != 1) return;  // the thread publishes the whole region
    // Another writer at work (a snapshot on another thread, which copies the
    // whole region anyway): this record waits for the next one.
    if (g_computing.exchange(true)) return;
    if (profile_records_reserved(*g_state)) profile::publish_record(g_state->writer.profile_region(), record);
    g_computing.store(false, std::memory_order_release);
}

bool publisher_pending() noexcept { return g_lazy.load(std::memory_order_relaxed) == 1; }

// Stops the publisher thread: whether it ended within `wait_ms` (then this
// thread is the segment's only writer). `our_requests`, if given, counts the
// request word's bumps made here to wake it.
static bool stop_thread(State& st, long wait_ms, uint32_t* our_requests = nullptr) noexcept {
    if (!st.thread_started.load(std::memory_order_acquire)) return true;
    g_stop.store(true, std::memory_order_release);
    if (uint32_t* w = st.writer.request_word()) {
        if (our_requests) ++*our_requests;
        std::atomic_ref<uint32_t>(*w).fetch_add(1, std::memory_order_release);
        syscall(SYS_futex, w, FUTEX_WAKE, 1, nullptr, nullptr, 0);
    }
    timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += wait_ms / 1000;
    deadline.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }
    const bool ended = pthread_timedjoin_np(st.thread, nullptr, &deadline) == 0;
    st.thread_started.store(!ended, std::memory_order_relaxed);
    return ended;
}

void publisher_shutdown() noexcept {
    if (!g_state) return;
    InterruptionsHeld held;  // a handler's allocation in the exit path is the program's
    Guard guard;
    State& st = *g_state;
    uint32_t our_requests = 0;  // the bump below, which stops our thread
    const int tid = st.thread_started.load(std::memory_order_acquire) ? publisher_tid() : 0;
    const bool sole_writer = stop_thread(st, 500, &our_requests);
    // A join returns before the kernel lets go of the thread (its own
    // descriptor table takes a moment to close): until then status still
    // counts it, and the final /sched/threads/total would too.
    for (int i = 0; sole_writer && tid > 0 && !sys::confined() && i < 200 &&
                    syscall(SYS_tgkill, sys::self_pid(), tid, 0) == 0;
         ++i) {
        sys::pause_ns(1000000);
    }
    // Files are opened and the segment removed only if the program allows
    // it: a confined one keeps its segment, where exec and gc find it.
    const bool confined = collect::confined_now();
    if (confined && (config().report_path || config().profile_report_path))
        log::line({"the program confined itself (seccomp): no report files"});
    // The stacks live in the agent's own tables, not in the segment: this
    // needs no publisher.
    if (config().profile_report_path && !confined) write_profile_report(config().profile_report_path);
    if (!sole_writer) return;  // never two writers; the segment keeps its last snapshot
    if (!take_computing()) return;  // a crash handler wrote it
    st.writer.set_state(layout::kStatePublisherRunning, false);
    // The last snapshot is for those who look: a reader that asked (the
    // segment is a new file: its word started at 0), now too, a report, a
    // trace, or anyone later at a segment that stays. Nobody else can: a
    // reader still mapping a removed one folds the counts itself, and sees
    // no exited bit, which means this snapshot.
    const bool asked = st.writer.request() - our_requests != 0;
    const bool wanted = asked || confined || config().report_path || trace_enabled();
    if (wanted) publish_final(st);
    if (confined) return;
    if (config().report_path)
        write_report(config().report_path, {st.metrics, st.count}, st.words, {st.word_offset, st.count});
    if (!st.writer.unlink(g_shm_dir.fd()) && !wanted) publish_final(st);  // refused (sticky /dev/shm): it stays
}

void publisher_crash() noexcept {
    if (!g_state) return;
    Guard guard;
    State& st = *g_state;
    detail::g_crashing.store(true, std::memory_order_relaxed);
    // The publisher thread finishes a snapshot in well under a millisecond;
    // if the crash is its own, or it does not finish, the last words stand.
    // pthread_self, not gettid: a confined program's filter may forbid the call.
    bool mine = !st.thread_started.load(std::memory_order_acquire) || !pthread_equal(pthread_self(), st.thread);
    for (int tries = 0; mine && g_computing.exchange(true, std::memory_order_acquire); ++tries) {
        if (tries == 200) mine = false;
        sys::pause_ns(1000000);
    }
    if (mine) {
        st.writer.set_state(layout::kStatePublisherRunning, false);
        publish_final(st);
    }
    if (collect::confined_now()) return;  // its filter may forbid what follows
    if (config().report_path)
        write_report(config().report_path, {st.metrics, st.count}, st.words, {st.word_offset, st.count});
    if (mine) st.writer.unlink(g_shm_dir.fd());
}

void publisher_before_confinement() noexcept {
    // Still free to make any call (sys::confined is not set yet): the
    // profile's records get their pages now, as they could not later.
    if (g_state && g_state->writer.ok()) (void)g_state->writer.reserve_profile();
}

void publisher_wait_for_snapshot() noexcept {
    for (int tries = 0; tries < 200 && g_computing.load(); ++tries) {
        sys::pause_ns(1000000);
    }
}

bool publisher_before_uid_drop(uid_t uid) noexcept {
    if (!g_state) return false;
    if (uid != 0 && config().report_path && __libc_single_threaded) report_before_uid_change(config().report_path, uid);
    const int err = g_state->writer.give_to(uid);
    if (err && err != EBADF)  // EBADF: no segment (none made, or a forked child's before its own)
        log::line({"cannot give the segment to the program's new user (", strerror(err), "): it stays in /dev/shm"});
    return err == 0;
}

void publisher_mark_attached() noexcept {
    if (g_state) g_state->writer.set_state(layout::kStateAttached, true);
}

void publisher_detach() noexcept {
    // Only calls on the list `detach` checked the filters against
    // (ipc/attach_syscalls.h): the program may have confined itself since
    // the attach, perhaps on the borrowed thread alone, where no status
    // tells. So no snapshot here, no wait for the thread's exit, no unlink
    // (the CLI removes the segment): the thread's last snapshot stands. A
    // thread still in a snapshot (its allocator statistics wait for every
    // arena's lock under heavy allocation) gets 10 s.
    if (g_state) {
        InterruptionsHeld held;
        Guard guard;
        State& st = *g_state;
        if (stop_thread(st, 10000) && take_computing()) {
            st.writer.set_state(layout::kStatePublisherRunning, false);
            st.writer.set_state(layout::kStateExited, true);
        }
        st.writer.close_file();
    }
    g_shm_dir.close();
    collect::drop_files_after_fork();
}

bool publisher_rearm() noexcept {
    if (g_state && g_state->thread_started.load(std::memory_order_acquire)) return false;
    g_stop.store(false, std::memory_order_relaxed);
    g_lazy.store(0, std::memory_order_relaxed);
    g_computing.store(false, std::memory_order_release);
    return true;
}

void publisher_forget_after_fork() noexcept {
    g_lazy.store(0, std::memory_order_relaxed);
    g_computing.store(false, std::memory_order_relaxed);  // the parent's thread may have held it
    if (!g_state) return;
    g_state->writer.abandon();  // the parent's: never write it from here
    g_state->terms = nullptr;   // they were in it
    g_state->term_count = 0;
    g_shm_dir.close();
    g_state->thread_started.store(false, std::memory_order_relaxed);
}

}  // namespace gometrics::agent
