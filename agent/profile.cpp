// The sampling profiler's tables, sampling and publication; see profile.h.
//
// Concurrency: any thread samples (cold path) and any thread frees. The
// stack table is append-only: a record is claimed with a fetch_add, written,
// then made visible by a release store of its kind; the index maps a stack
// hash to a record with a CAS (two threads racing on one new stack may both
// append it: the publisher skips records that lost, pprof would merge them
// anyway). Counters are atomic RMWs: sampling is rare by construction. The
// live-object table is open addressing with tombstones, probed a bounded
// number of times: when it is too full a sample's free is not tracked and
// is counted as such instead.
#include "profile.h"
#include "clocks.h"

#include <dlfcn.h>
#include <link.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <unwind.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <algorithm>

#include "agent.h"
#include "buffer.h"
#include "layout.h"
#include "kept_file.h"
#include "log.h"
#include "real.h"
#include "seqlock.h"

namespace gometrics::agent::profile {

namespace detail {
GOMETRICS_BUFFER alignas(4096) constinit uint8_t g_live_filter[size_t{1} << kFilterBits];
}  // namespace detail

namespace {

using layout::ProfileHeader;
using layout::StackRecord;

constexpr uint32_t kDepth = 32;          // frames kept per stack
constexpr uint32_t kLiveBits = 15;       // live sampled objects tracked: 32768
constexpr uint32_t kLiveProbes = 32;
constexpr uintptr_t kTombstone = 1;
constexpr uint32_t kRecordSize = sizeof(StackRecord) + kDepth * sizeof(uint64_t);

struct Record {
    StackRecord head;
    uint64_t pcs[kDepth];
};
static_assert(sizeof(Record) == kRecordSize);

struct LiveObject {
    std::atomic<uintptr_t> ptr;  // 0 empty, kTombstone removed
    uint32_t stack;
    uint32_t reserved;
    uint64_t size;
};

// Set once by configure(); read-only afterwards.
struct Config {
    uint64_t heap_rate = 0;
    uint64_t mutex_fraction = 0;
    uint32_t max_stacks = 0;
    uintptr_t self_lo = 0, self_hi = 0;  // our own text: frames to skip
};

constinit Config g_cfg;
constinit std::atomic<int> g_state{0};  // 0 unconfigured, 1 configuring, 2 ready

// Tables (anonymous mappings), mapped at the first sample and valid when
// g_tables == kMapped: a process that never samples (most short ones)
// reserves none of their address space.
enum : int { kUnmapped, kMapping, kMapped, kMapFailed };
constinit std::atomic<int> g_tables{kUnmapped};
constinit Record* g_records = nullptr;
constinit uint64_t* g_record_hash = nullptr;
constinit std::atomic<uint32_t>* g_index = nullptr;  // record + 1, 0 empty
constinit uint32_t g_index_mask = 0;
constinit LiveObject* g_live = nullptr;
constinit std::atomic<uint32_t> g_record_count{0};
constinit std::atomic<uint64_t> g_dropped{0};
constinit std::atomic<uint64_t> g_untracked{0};
constinit uint64_t g_mapped = 0;

void* map(size_t bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    g_mapped += bytes;
    return p;
}

int find_self(dl_phdr_info* info, size_t, void* base) {
    if (reinterpret_cast<void*>(info->dlpi_addr) != base) return 0;
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const auto& ph = info->dlpi_phdr[i];
        if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X)) {
            g_cfg.self_lo = info->dlpi_addr + ph.p_vaddr;
            g_cfg.self_hi = g_cfg.self_lo + ph.p_memsz;
        }
    }
    return 1;
}

// Writes a byte of each page of a table that every free or probe reads
// before anything is written to it. Left to those reads, a page would map
// the shared zero page, and the first write then replace it, which flushes
// the TLB of every CPU the process runs on (docs/profiles.md). Written once,
// as the first sample maps the tables.
void touch_for_writing(void* table, size_t bytes) {
    auto* b = static_cast<uint8_t*>(table);
    for (size_t i = 0; i < bytes; i += 4096) std::atomic_ref<uint8_t>(b[i]).fetch_or(0, std::memory_order_relaxed);
}

bool map_tables() {
    uint32_t cap = 1;
    while (cap < 2 * g_cfg.max_stacks) cap <<= 1;
    g_records = static_cast<Record*>(map(size_t{g_cfg.max_stacks} * sizeof(Record)));
    g_record_hash = static_cast<uint64_t*>(map(size_t{g_cfg.max_stacks} * sizeof(uint64_t)));
    g_index = static_cast<std::atomic<uint32_t>*>(map(size_t{cap} * sizeof(uint32_t)));
    g_index_mask = cap - 1;
    if (g_cfg.heap_rate) {
        g_live = static_cast<LiveObject*>(map(sizeof(LiveObject) << kLiveBits));
        g_mapped += sizeof detail::g_live_filter;  // static, but written from here on
    }
    const bool ok = g_records && g_record_hash && g_index && (!g_cfg.heap_rate || g_live);
    if (ok) {
        touch_for_writing(g_index, size_t{cap} * sizeof(uint32_t));
        if (g_live) touch_for_writing(detail::g_live_filter, sizeof detail::g_live_filter);
    }
    return ok;
}

// Reads the environment once (lazily: hooks run before our constructor).
void configure() noexcept {
    int expected = 0;
    if (!g_state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
        while (g_state.load(std::memory_order_acquire) != 2) sys::pause_ns(sys::kWaitNs);
        return;
    }
    const agent::Config& env = agent::config();
    g_cfg.heap_rate = env.profile_rate;
    g_cfg.mutex_fraction = env.mutex_fraction;
    g_cfg.max_stacks = env.profile_max_stacks;
    if (g_cfg.max_stacks == 0) g_cfg.heap_rate = g_cfg.mutex_fraction = 0;
    Dl_info self{};
    if (dladdr(reinterpret_cast<void*>(&configure), &self)) dl_iterate_phdr(find_self, self.dli_fbase);
    g_state.store(2, std::memory_order_release);
}

// Maps the tables on the first sample; racing samplers wait for it (mmap
// only, no lock and no allocation). False: no tables, the sample is dropped.
bool tables_ready() noexcept {
    int s = g_tables.load(std::memory_order_acquire);
    if (s == kMapped) [[likely]]
        return true;
    if (s == kUnmapped && g_tables.compare_exchange_strong(s, kMapping, std::memory_order_acq_rel)) {
        const bool ok = map_tables();
        if (!ok) log::line({"cannot map the profiler's tables: samples are dropped"});
        g_tables.store(ok ? kMapped : kMapFailed, std::memory_order_release);
        return ok;
    }
    while ((s = g_tables.load(std::memory_order_acquire)) == kMapping) sys::pause_ns(sys::kWaitNs);
    return s == kMapped;
}

const Config& config() noexcept {
    if (g_state.load(std::memory_order_acquire) != 2) [[unlikely]]
        configure();
    return g_cfg;
}

// xorshift64* on a per-thread state word; never 0 once seeded. `salt`
// tells threads seeded in the same nanosecond apart.
uint64_t next_random(uint64_t& state, uint64_t salt) {
    uint64_t x = state;
    if (!x) {
        timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        x = ((uint64_t(ts.tv_nsec) << 20) ^ salt) | 1;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

uint64_t next_random(ThreadSlot* s) {
    return next_random(s->sample_rng, uint64_t(s->tid) ^ reinterpret_cast<uintptr_t>(s));
}

// The mutex sampler's random state, per thread: a lock may be contended by a
// thread whose frees go to the shared orphans slot, so not the slot's word.
__thread uint64_t tls_mutex_rng [[gnu::tls_model("initial-exec")]];

// A uniform draw in [0, n) (Go's cheaprandn: multiply and shift, no division).
uint64_t random_below(uint64_t n) {
    const uint64_t r = next_random(tls_mutex_rng, reinterpret_cast<uintptr_t>(&tls_mutex_rng)) >> 32;
    return (r * n) >> 32;
}

// ln(u) for u in (0, 1], to 1e-15: the agent's one use of libm, which it no
// longer loads into every process. u = m * 2^e with m in [sqrt(1/2), sqrt(2)),
// ln(m) = 2 atanh(z) with z = (m - 1) / (m + 1), |z| < 0.172: ten terms.
double ln_unit(double u) {
    uint64_t bits = std::bit_cast<uint64_t>(u);
    int e = static_cast<int>((bits >> 52) & 0x7ff) - 1022;
    double m = std::bit_cast<double>((bits & 0x000fffffffffffffULL) | 0x3fe0000000000000ULL);  // [0.5, 1)
    if (m < 0x1.6a09e667f3bcdp-1) {  // sqrt(1/2)
        m *= 2;
        --e;
    }
    const double z = (m - 1) / (m + 1), z2 = z * z;
    double s = 1.0 / 19;
    for (int k = 17; k >= 1; k -= 2) s = s * z2 + 1.0 / k;
    return 2 * z * s + e * 0x1.62e42fefa39efp-1;  // ln 2
}

// 1 + floor(E * mean) for E exponential with mean 1 (Go's fastexprand),
// at most 2^62. With mean = rate, the bytes until the next sample; with
// mean = rate / u, the allocations of u bytes until the next sample of that
// size (geometric with p = 1 - exp(-u / rate)).
uint64_t draw(ThreadSlot* s, double mean) {
    const double u = (double(next_random(s) >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
    const double x = -ln_unit(u) * mean;
    return x >= 0x1.0p62 ? uint64_t{1} << 62 : uint64_t(x) + 1;
}

constexpr uint64_t kNever = uint64_t{1} << 62;

// Stacks being unwound now: a filter waits for them (before_confinement),
// and so does a fork, which holds new ones back meanwhile (before_fork).
constinit std::atomic<int> g_unwinding{0};
constinit std::atomic<int> g_forking{0};
// A forked child whose parent had a stack under way: the unwinder's state
// may be half written here.
constinit bool g_no_stacks_after_fork = false;

// The return addresses of the calling thread's frames, by libgcc's unwinder
// (linked into the agent, hidden): it follows each frame's unwind table,
// found through the loader's _dl_find_object without a lock, and stops at
// a frame that has none. It makes no system call and opens no descriptor:
// libunwind, used before, kept a pipe in the program's descriptor table to
// check addresses, and read and wrote those numbers after the program had
// closed them and reused them for its own files.
struct Unwound {
    void** out;
    int n, max;
};
_Unwind_Reason_Code take_frame(_Unwind_Context* context, void* arg) {
    auto* u = static_cast<Unwound*>(arg);
    const uintptr_t ip = _Unwind_GetIP(context);
    if (ip == 0 || u->n == u->max) return _URC_END_OF_STACK;
    u->out[u->n++] = reinterpret_cast<void*>(ip);
    return _URC_NO_REASON;
}

uint32_t capture(uint64_t* pcs) {
    // The count goes up before the look at a fork under way, whose flag
    // goes up before its wait: one of the two sees the other. (A confined
    // program's samples keep their stacks: the unwinder makes no system call.)
    g_unwinding.fetch_add(1);
    if (g_forking.load() != 0 || g_no_stacks_after_fork) {
        g_unwinding.fetch_sub(1, std::memory_order_release);
        return 0;
    }
    void* raw[kDepth + 16];
    Unwound u{raw, 0, static_cast<int>(std::size(raw))};
    _Unwind_Backtrace(take_frame, &u);
    const int n = u.n;
    g_unwinding.fetch_sub(1, std::memory_order_release);
    uint32_t depth = 0;
    int i = 0;
    // Skip our own frames (the sampling path and the hook).
    while (i < n && reinterpret_cast<uintptr_t>(raw[i]) - g_cfg.self_lo < g_cfg.self_hi - g_cfg.self_lo) ++i;
    for (; i < n && depth < kDepth; ++i) pcs[depth++] = reinterpret_cast<uintptr_t>(raw[i]);
    return depth;
}

uint64_t hash_stack(uint32_t kind, const uint64_t* pcs, uint32_t depth) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ kind;
    for (uint32_t i = 0; i < depth; ++i) h = (h ^ pcs[i]) * 0x100000001B3ULL;
    return h ^ (h >> 29);
}

bool same_stack(const Record& r, uint32_t kind, const uint64_t* pcs, uint32_t depth) {
    return std::atomic_ref<uint32_t>(const_cast<uint32_t&>(r.head.kind)).load(std::memory_order_acquire) == kind &&
           r.head.depth == depth && std::memcmp(r.pcs, pcs, depth * sizeof(uint64_t)) == 0;
}

// The record of this stack, created if new; -1 when the table is full.
int64_t intern(uint32_t kind, const uint64_t* pcs, uint32_t depth) {
    const uint64_t h = hash_stack(kind, pcs, depth);
    for (uint32_t probe = 0; probe <= g_index_mask; ++probe) {
        std::atomic<uint32_t>& slot = g_index[(h + probe) & g_index_mask];
        uint32_t v = slot.load(std::memory_order_acquire);
        if (v == 0) {
            const uint32_t n = g_record_count.fetch_add(1, std::memory_order_relaxed);
            if (n >= g_cfg.max_stacks) {
                g_record_count.store(g_cfg.max_stacks, std::memory_order_relaxed);
                return -1;
            }
            Record& r = g_records[n];
            r.head.depth = depth;
            std::memcpy(r.pcs, pcs, depth * sizeof(uint64_t));
            g_record_hash[n] = h;
            std::atomic_ref<uint32_t>(r.head.kind).store(kind, std::memory_order_release);
            if (slot.compare_exchange_strong(v, n + 1, std::memory_order_acq_rel)) return n;
            // Lost the race for this index slot: record n stays unreachable
            // (published with no samples); look at what won.
            if (g_record_hash[v - 1] == h && same_stack(g_records[v - 1], kind, pcs, depth)) return v - 1;
            continue;
        }
        if (g_record_hash[v - 1] == h && same_stack(g_records[v - 1], kind, pcs, depth)) return v - 1;
    }
    return -1;
}

void add(uint64_t& field, uint64_t v) { std::atomic_ref<uint64_t>(field).fetch_add(v, std::memory_order_relaxed); }

// Where p's probe sequence starts in the live-object table: a
// multiplicative hash, so blocks from one region spread over the table.
void record_changed(uint32_t r) {
    if (auto* hook = g_record_changed) hook(r);
}

uint32_t live_index(const void* p) {
    return static_cast<uint32_t>((reinterpret_cast<uintptr_t>(p) >> 4) * 0x9E3779B97F4A7C15ULL >> (64 - kLiveBits));
}

// The live-filter byte of p, counted up or down (saturating: a byte that
// reached 255 stays, as some of its objects went untracked).
void filter_add(const void* p, int delta) {
    std::atomic_ref<uint8_t> f(detail::g_live_filter[detail::filter_index(p)]);
    uint8_t c = f.load(std::memory_order_relaxed);
    while (c != 255 && (delta > 0 || c != 0) &&
           !f.compare_exchange_weak(c, static_cast<uint8_t>(c + delta), std::memory_order_release)) {
    }
}

// A live-object entry claimed for a sample (marked busy with an impossible
// pointer), or null when its probes are all taken.
LiveObject* claim_live(const void* p) {
    const uint32_t h = live_index(p);
    const uint32_t mask = (1u << kLiveBits) - 1;
    for (uint32_t probe = 0; probe < kLiveProbes; ++probe) {
        LiveObject& o = g_live[(h + probe) & mask];
        // Written first, not read: a read of a page never touched maps the
        // zero page, and the write that follows flushes every CPU's TLB.
        uintptr_t cur = 0;
        if (o.ptr.compare_exchange_strong(cur, kTombstone + 1, std::memory_order_acquire) ||
            (cur == kTombstone && o.ptr.compare_exchange_strong(cur, kTombstone + 1, std::memory_order_acquire)))
            return &o;
    }
    return nullptr;
}

// A sampled small block of glibc's moves to a chunk beyond the small sizes,
// which the free hook's inline path never takes: so that path needs no test
// for samples. The alignment is kept (the lowest set bit of the address is
// at least what was asked for). Null: no memory or an alignment above a
// page, and the block stays.
constexpr size_t kMovedBytes = 1024;  // a 1040-byte chunk: not glibc::small_chunk
void* move_block(void* p, size_t usable, size_t bytes) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    const size_t align = a & (~a + 1);
    if (align > 4096) return nullptr;  // maybe asked for: a larger one could waste far more than the block
    const RealFunctions& real = agent::detail::g_real;
    void* q = align > 16 ? real.memalign(align, bytes) : real.malloc(bytes);
    if (!q) return nullptr;
    std::memcpy(q, p, usable);
    real.free(p);
    return q;
}

// p, of `usable` bytes, is a heap sample: its stack, and the object, so
// that its free is seen. With `move` (a small glibc block) the program gets
// a moved copy, tracked, or else p: the block to hand out is returned.
void* record_sample(void* p, size_t usable, bool move) {
    InterruptionsHeld held;
    Guard guard;  // the sampler's own allocations are not the program's
    if (!tables_ready()) {
        g_dropped.fetch_add(1, std::memory_order_relaxed);
        return p;
    }
    uint64_t pcs[kDepth];
    const uint32_t depth = capture(pcs);
    const int64_t r = intern(layout::kStackHeap, pcs, depth);
    if (r < 0) {
        g_dropped.fetch_add(1, std::memory_order_relaxed);
        return p;
    }
    void* q = move ? move_block(p, usable, kMovedBytes) : p;
    if (!q) {  // a small chunk must never be a tracked sample: this one is dropped
        g_dropped.fetch_add(1, std::memory_order_relaxed);
        return p;
    }
    add(g_records[r].head.alloc_objects, 1);
    add(g_records[r].head.alloc_bytes, usable);
    LiveObject* o = claim_live(q);
    if (!o) {
        // Its probes are full: counted as allocated, its free unseen. A moved
        // block goes back to a small chunk, whose free the hooks count inline
        // (should that fail too, its free counts the moved chunk's size).
        g_untracked.fetch_add(1, std::memory_order_relaxed);
        if (q != p)
            if (void* back = move_block(q, usable, usable)) q = back;
    } else {
        o->stack = static_cast<uint32_t>(r);
        o->size = usable;
        o->ptr.store(reinterpret_cast<uintptr_t>(q), std::memory_order_release);
        filter_add(q, +1);
    }
    record_changed(static_cast<uint32_t>(r));
    return q;
}

}  // namespace

void before_confinement() noexcept {
    for (int waited_ms = 0; waited_ms < 200 && g_unwinding.load() != 0; ++waited_ms) sys::pause_ns(1000000);
}

void before_fork() noexcept {
    g_forking.fetch_add(1);  // before the look, as capture's count: one of the two sees the other
    for (int waited = 0; waited < 1000 && g_unwinding.load() != 0; ++waited) sys::pause_ns(100000);
}

void after_fork_parent() noexcept { g_forking.fetch_sub(1, std::memory_order_release); }

void* small_reached(ThreadSlot* s, void* p, size_t usable) noexcept {
    const int saved_errno = errno;
    const Config& c = config();
    uint64_t& sample_at = small_sample_at(s, usable);
    const uint64_t count = load(small_counter(s, usable, kAllocs));
    const bool first = sample_at == 0;
    if (first || count >= sample_at) {  // else the hook only polled, early
        if (!first && c.heap_rate) p = record_sample(p, usable, agent::detail::g_glibc_chunks);
        sample_at = count + (c.heap_rate && usable ? draw(s, double(c.heap_rate) / double(usable)) : kNever);
    }
    small_call_left(s, usable) = static_cast<int64_t>(sample_at - count);  // sample_at > count, both below 2^63
    errno = saved_errno;
    return p;
}

void countdown_crossed(ThreadSlot* s, void* p, size_t usable) noexcept {
    const int saved_errno = errno;
    const Config& c = config();
    int64_t left = s->sample_countdown + s->sample_beyond;  // to the sample, when the hook polled early
    s->sample_beyond = 0;
    const bool first = !s->countdown_drawn;
    if (first || left < 0) {
        if (!first && c.heap_rate) record_sample(p, usable, false);
        s->countdown_drawn = 1;
        left = static_cast<int64_t>(c.heap_rate ? draw(s, double(c.heap_rate)) : kNever);
    }
    s->sample_countdown = left;
    errno = saved_errno;
}

// Whether sampled objects may be recorded: the filter also flags the
// bootstrap arena's blocks (real.cpp), and these may come before any table.
bool live_table() noexcept { return g_tables.load(std::memory_order_acquire) == kMapped && g_live; }

size_t sampled_size(const void* p) noexcept {
    if (!live_table()) return 0;
    const uint32_t h = live_index(p);
    const uint32_t mask = (1u << kLiveBits) - 1;
    const auto want = reinterpret_cast<uintptr_t>(p);
    for (uint32_t probe = 0; probe < kLiveProbes; ++probe) {
        const LiveObject& o = g_live[(h + probe) & mask];
        const uintptr_t cur = o.ptr.load(std::memory_order_acquire);
        if (cur == 0) return 0;
        if (cur == want) return o.size;
    }
    return 0;
}

size_t forget(void* p) noexcept {
    if (!live_table()) return 0;
    const uint32_t h = live_index(p);
    const uint32_t mask = (1u << kLiveBits) - 1;
    const auto want = reinterpret_cast<uintptr_t>(p);
    for (uint32_t probe = 0; probe < kLiveProbes; ++probe) {
        LiveObject& o = g_live[(h + probe) & mask];
        const uintptr_t cur = o.ptr.load(std::memory_order_acquire);
        if (cur == 0) return 0;  // not sampled (a filter collision)
        if (cur != want) continue;
        Record& r = g_records[o.stack];
        add(r.head.free_objects, 1);
        add(r.head.free_bytes, o.size);
        const uint32_t stack = o.stack;
        const size_t size = o.size;
        o.ptr.store(kTombstone, std::memory_order_release);
        filter_add(p, -1);
        record_changed(stack);
        return size;
    }
    return 0;
}

void start_again() noexcept {
    if (g_state.load(std::memory_order_acquire) != 2 || g_tables.load(std::memory_order_acquire) != kMapped) return;
    if (g_live)
        for (uint32_t i = 0; i < (1u << kLiveBits); ++i) {
            const uintptr_t cur = g_live[i].ptr.load(std::memory_order_acquire);
            if (cur > kTombstone) (void)forget(reinterpret_cast<void*>(cur));
        }
    // The stacks stay interned (a reader of the new segment sees them with
    // zero counts until they are sampled again).
    const uint32_t count = std::min(g_record_count.load(std::memory_order_acquire), g_cfg.max_stacks);
    for (uint32_t i = 0; i < count; ++i) {
        StackRecord& h = g_records[i].head;
        for (uint64_t* w : {&h.alloc_objects, &h.alloc_bytes, &h.free_objects, &h.free_bytes, &h.contentions, &h.delay_ns})
            std::atomic_ref<uint64_t>(*w).store(0, std::memory_order_relaxed);
    }
    g_dropped.store(0, std::memory_order_relaxed);
    g_untracked.store(0, std::memory_order_relaxed);
}

void sample_contention(uint64_t wait_ns) noexcept {
    const Config& c = config();
    // Each contention with probability 1 / fraction, as Go's mutex profile
    // draws: every Nth would alias with a program that contends periodically.
    if (!c.mutex_fraction || (c.mutex_fraction > 1 && random_below(c.mutex_fraction) != 0)) return;
    const int saved_errno = errno;
    {
        InterruptionsHeld held;
        Guard guard;
        uint64_t pcs[kDepth];
        const int64_t r = tables_ready() ? intern(layout::kStackMutex, pcs, capture(pcs)) : -1;
        if (r < 0) {
            g_dropped.fetch_add(1, std::memory_order_relaxed);
        } else {
            add(g_records[r].head.contentions, 1);
            record_changed(static_cast<uint32_t>(r));
            add(g_records[r].head.delay_ns, wait_ns);
        }
    }
    errno = saved_errno;
}

size_t region_bytes() noexcept {
    const Config& c = config();
    if (!c.heap_rate && !c.mutex_fraction) return 0;
    return sizeof(ProfileHeader) + size_t{c.max_stacks} * kRecordSize;
}

bool any_records() noexcept {
    return g_tables.load(std::memory_order_acquire) == kMapped && g_record_count.load(std::memory_order_acquire) > 0;
}

void publish(void* region, bool records) noexcept {
    const Config& c = config();
    if (!region || (!c.heap_rate && !c.mutex_fraction)) return;
    auto* h = static_cast<ProfileHeader*>(region);
    auto* out = reinterpret_cast<uint64_t*>(h + 1);
    const uint32_t count = !records || g_tables.load(std::memory_order_acquire) != kMapped
                               ? 0
                               : std::min(g_record_count.load(std::memory_order_acquire), c.max_stacks);
    seqlock::Writer w(&h->seq);
    w.begin();
    std::atomic_ref<uint32_t>(h->max_depth).store(kDepth, std::memory_order_relaxed);
    seqlock::store_word(&h->heap_rate, c.heap_rate);
    seqlock::store_word(&h->mutex_fraction, c.mutex_fraction);
    seqlock::store_word(reinterpret_cast<uint64_t*>(&h->max_stacks), uint64_t{kRecordSize} << 32 | c.max_stacks);
    seqlock::store_word(&h->stack_count, count);
    seqlock::store_word(&h->dropped_samples, g_dropped.load(std::memory_order_relaxed));
    seqlock::store_word(&h->untracked_frees, g_untracked.load(std::memory_order_relaxed));
    for (uint32_t i = 0; i < count; ++i) {
        const auto* src = reinterpret_cast<const uint64_t*>(&g_records[i]);
        // Word 0 is kind|depth: acquire, so a record's pcs are complete
        // before we copy them (a record still being written reads kind 0).
        const uint64_t head =
            std::atomic_ref<uint64_t>(*const_cast<uint64_t*>(src)).load(std::memory_order_acquire);
        seqlock::store_word(out, head);
        for (uint32_t k = 1; k < kRecordSize / 8; ++k)
            seqlock::store_word(out + k, std::atomic_ref<uint64_t>(*const_cast<uint64_t*>(src + k))
                                             .load(std::memory_order_relaxed));
        out += kRecordSize / 8;
    }
    w.end();
}

void (*g_record_changed)(uint32_t record) noexcept = nullptr;

void publish_record(void* region, uint32_t r) noexcept {
    const Config& c = config();
    if (!region || (!c.heap_rate && !c.mutex_fraction)) return;
    auto* h = static_cast<ProfileHeader*>(region);
    if (g_tables.load(std::memory_order_acquire) != kMapped) return;
    const uint32_t count = std::min(g_record_count.load(std::memory_order_acquire), c.max_stacks);
    if (r >= count) return;
    auto* out = reinterpret_cast<uint64_t*>(h + 1) + size_t{r} * (kRecordSize / 8);
    const auto* src = reinterpret_cast<const uint64_t*>(&g_records[r]);
    seqlock::Writer w(&h->seq);
    w.begin();
    seqlock::store_word(&h->stack_count, count);
    seqlock::store_word(&h->dropped_samples, g_dropped.load(std::memory_order_relaxed));
    seqlock::store_word(&h->untracked_frees, g_untracked.load(std::memory_order_relaxed));
    seqlock::store_word(out, std::atomic_ref<uint64_t>(*const_cast<uint64_t*>(src)).load(std::memory_order_acquire));
    for (uint32_t k = 1; k < kRecordSize / 8; ++k)
        seqlock::store_word(out + k, std::atomic_ref<uint64_t>(*const_cast<uint64_t*>(src + k)).load(std::memory_order_relaxed));
    w.end();
}

void after_fork_child() noexcept {
    if (g_unwinding.load(std::memory_order_relaxed) != 0) g_no_stacks_after_fork = true;
    g_unwinding.store(0, std::memory_order_relaxed);
    g_forking.store(0, std::memory_order_relaxed);
    int configuring = 1;
    g_state.compare_exchange_strong(configuring, 0, std::memory_order_relaxed);
    int mapping = kMapping;  // the parent's mapping thread is not in the child: map again
    if (g_tables.compare_exchange_strong(mapping, kUnmapped, std::memory_order_relaxed)) g_mapped = 0;
}

uint64_t mapped_bytes() noexcept { return g_tables.load(std::memory_order_acquire) == kMapped ? g_mapped : 0; }

}  // namespace gometrics::agent::profile
