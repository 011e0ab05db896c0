// The shared-memory ABI between the agent (writer) and readers: the only file
// that defines what lives in /dev/shm/gometrics.<pid>. Change it and bump
// kLayoutVersion.
//
// Segment layout (all offsets are from the start of the segment, all regions
// 8-byte aligned, shared memory holds offsets and never pointers):
//
//   SegmentHeader                         at 0, header_size bytes
//   DescEntry[desc_count]                 at desc_offset, desc_entry_size each
//   strings (names, descriptions, UTF-8)  at strings_offset, strings_size bytes
//   bounds  (histogram edges, double[])   at bounds_offset, bounds_size bytes
//   values  (ValuesHeader, then uint64[]) at values_offset, values_size bytes
//   profile (ProfileHeader, StackRecords) at profile_offset, profile_size
//                                         bytes; absent (0, 0) when off
//   live    (LiveHeader, FoldTerm[],      at live_offset, live_size bytes;
//            thread slots)                absent (0, 0) from older agents
//
// Everything but the values region, the three live words of the header
// (seq, request, state) and the live region's slots and slots_used is
// written once, before the header's magic is published with a release
// store, and never changes. The values region
// changes only under the seqlock described in seqlock.h; the profile region
// has a seqlock of its own (ProfileHeader::seq), same protocol.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace gometrics::layout {

inline constexpr uint64_t kMagic = 0x43495254454D4F47ULL;  // "GOMETRIC" in memory order (little-endian)
inline constexpr uint32_t kLayoutVersion = 1;
inline constexpr char kShmPrefix[] = "gometrics.";  // + decimal pid, in /dev/shm

// Limits a reader enforces before trusting a segment (a writer stays far below).
inline constexpr uint32_t kMaxMetrics = 4096;
inline constexpr uint32_t kMaxHistogramBuckets = 4096;  // edges per histogram
inline constexpr uint64_t kMaxSegmentSize = 64ULL << 20;

// DescEntry::kind; same numbering as gometrics::ValueKind and Go's ValueKind.
enum Kind : uint8_t { kKindBad = 0, kKindUint64 = 1, kKindFloat64 = 2, kKindFloat64Histogram = 3 };

// DescEntry::aggregation: how the values of several processes combine into
// one. 0 is what a writer from before this field left in the byte (it was
// reserved and zeroed): readers then decide by their own rule.
enum Aggregation : uint8_t { kAggUnknown = 0, kAggSum = 1, kAggMax = 2, kAggNone = 3 };

// Its name in reports and documentation (the reader's to_string(Aggregation) agrees).
constexpr const char* aggregation_name(uint8_t a) {
    return a == kAggSum ? "sum" : a == kAggMax ? "max" : a == kAggNone ? "none" : "unknown";
}

// SegmentHeader::state bits, written by the agent with relaxed stores.
enum State : uint32_t {
    kStatePublisherRunning = 1u << 0,  // a publisher thread answers requests
    kStateNotInterposed = 1u << 1,     // the program's malloc bypasses the agent
    // The final snapshot, written at exit when a reader asked for a snapshot
    // since the segment was made (request moved), a report or trace wants
    // it, or the segment stays (a confined program's, a removal refused).
    // Without it the segment is removed at exit with neither: a reader that
    // never asked and still maps it folds the shared slots exactly, the rest
    // as of the last snapshot.
    kStateExited = 1u << 2,
    // No publisher thread (a single-threaded program, where a thread of
    // ours would be seen: /proc/self/task, unshare, glibc's single-thread
    // paths). A request is answered at the program's next allocations, on
    // its own thread; values folded from the live region are fresh anyway.
    kStatePublisherLazy = 1u << 3,
    // The agent was attached to the running process (`gometrics-cli
    // attach`): start_time_ns is the attach, cumulative values count from it.
    kStateAttached = 1u << 4,
};

struct SegmentHeader {
    uint64_t magic;  // kMagic; stored last (release) when the segment is ready
    uint32_t version;
    uint32_t header_size;  // sizeof(SegmentHeader) of the writer
    uint64_t total_size;   // bytes of the whole segment

    int32_t pid;
    uint32_t desc_count;
    uint64_t start_time_ns;     // CLOCK_REALTIME when the agent started in this process
    uint64_t proc_start_ticks;  // field 22 of /proc/self/stat: tells a reused pid apart

    uint32_t desc_offset;
    uint32_t desc_entry_size;  // sizeof(DescEntry) of the writer
    uint32_t strings_offset;
    uint32_t strings_size;
    uint32_t bounds_offset;
    uint32_t bounds_size;
    uint32_t values_offset;
    uint32_t values_size;
    uint32_t interval_ms;  // publisher refresh period
    uint32_t reserved0;

    // Live words. seq is the seqlock generation of the values region (odd while
    // the publisher writes). request is bumped by readers that want a fresh
    // snapshot (then FUTEX_WAKE); the agent only compares it for change.
    // state holds State bits.
    uint32_t seq;
    uint32_t request;
    uint32_t state;
    uint32_t reserved1;

    uint32_t profile_offset;  // 0 when the process does not profile
    uint32_t profile_size;
    uint32_t live_offset;  // 0 when the agent publishes no live counters
    uint32_t live_size;
    uint64_t reserved;
};

// One metric. name/description point into the strings region; a histogram's
// edges (bucket_count doubles) into the bounds region; its value is
// bucket_count - 1 uint64 counts at value_offset (bytes, from values_offset).
// A scalar's value is one 8-byte word (uint64 or the bits of a double).
struct DescEntry {
    uint32_t name_offset;  // from strings_offset
    uint32_t name_len;
    uint32_t desc_offset;  // from strings_offset
    uint32_t desc_len;
    uint8_t kind;  // Kind
    uint8_t cumulative;
    uint8_t aggregation;  // Aggregation; was reserved (0) in older writers
    uint8_t reserved0;
    uint32_t bounds_offset;  // from bounds_offset (histograms only)
    uint32_t bucket_count;   // edges (histograms only); counts = bucket_count - 1
    uint32_t value_offset;   // from values_offset, 8-byte aligned
};

// Start of the values region, written under the seqlock with the values.
struct ValuesHeader {
    uint64_t snapshot_seq;      // number of snapshots published so far
    uint64_t snapshot_time_ns;  // CLOCK_REALTIME of this snapshot
};

// The profile region: sampled stacks of allocations and of contended lock
// acquisitions. Counts are the samples as taken (not scaled): a reader
// scales them with heap_rate and mutex_fraction, as pprof expects. Pages
// past the header's may have no tmpfs page until the writer's first record:
// a reader copies the header, then only the stack_count records in use.
struct ProfileHeader {
    uint32_t seq;        // seqlock generation of this region (seqlock.h)
    uint32_t max_depth;  // pcs per StackRecord
    // The rest is written under seq, word by word.
    uint64_t heap_rate;       // mean bytes between heap samples (Poisson), 0: heap sampling off
    uint64_t mutex_fraction;  // one contended acquisition in this many is sampled, 0: off
    uint32_t max_stacks;      // StackRecords that fit
    uint32_t record_size;     // bytes per StackRecord with its pcs, 8-aligned
    uint64_t stack_count;     // StackRecords in use
    uint64_t dropped_samples; // samples lost because the stack table was full
    uint64_t untracked_frees; // sampled objects whose free could not be tracked
};

enum StackKind : uint32_t { kStackHeap = 1, kStackMutex = 2 };

// One distinct stack, followed by max_depth uint64 pcs (leaf first; pcs
// after the leaf are return addresses). All counts are cumulative. A record
// of kind 0 is unused (being written, or lost a race): skip it.
struct StackRecord {
    uint32_t kind;   // StackKind
    uint32_t depth;  // pcs in use
    uint64_t alloc_objects, alloc_bytes;  // sampled allocations from this stack
    uint64_t free_objects, free_bytes;    // ... of which freed since (in use = alloc - free)
    uint64_t contentions, delay_ns;       // sampled contended acquisitions, their wait
};

// The live region: the agent's per-thread counters themselves, so that a
// reader sums them at the moment it reads, whether or not the process is
// running code of the agent then (a program blocked in read(), or dead).
//
// Each thread that the agent counts owns one slot: slot_size bytes of 8-byte
// words, written only by that thread (plain stores of whole aligned words),
// at slots_offset + i * slot_size for i < slots_used. slots_used only grows
// (release store after the slot is ready); a slot's words only grow too,
// whoever owns it later. What the words mean is not fixed here: the
// FoldTerms say how values are made of them.
//
// Folding. A value word (index into the values payload, after the
// ValuesHeader) named by any term is, in a fresh read:
//     remainder[word] + sum over terms t of it, over slots i < slots_used,
//                        of t.weight * slot_i[t.slot_word]
// taken in pass order: every slot word of pass 0 is loaded (acquire) before
// any of pass 1, and slots_used is loaded again before each pass (a slot
// claimed after a pass began adds only the later passes). (Pass 0 holds
// frees, pass 1 allocations: a free counted implies its allocation is
// visible, so live counts never go below zero.)
// weight is an int64 for a uint64 metric (the sum wraps modulo 2^64 and is
// read as signed, negative meaning 0) and the bits of a double for a float64
// one. remainder[] is remainder_words uint64 (int64 or double bits, as the
// metric) at remainder_offset in the values region, written under the
// values seqlock: what threads without a slot here counted (the agent's
// snapshot adds them in). A reader that knows nothing of this region reads
// the published values, which are complete as of their snapshot.
struct LiveHeader {
    uint32_t slot_count;    // slots that fit
    uint32_t slot_size;     // bytes per slot, a multiple of 64
    uint32_t slots_offset;  // from live_offset, 64-aligned
    uint32_t term_count;
    uint32_t terms_offset;      // from live_offset
    uint32_t remainder_offset;  // bytes into the values region
    uint32_t remainder_words;   // as many as the payload's words
    uint32_t slots_used;        // live word: release-stored by the agent
};

struct FoldTerm {
    uint32_t value_word;  // into the values payload (after ValuesHeader)
    uint32_t slot_word;   // into a slot
    uint8_t pass;         // 0 or 1
    uint8_t is_float;     // weight is a double (else an int64)
    uint16_t reserved0;
    uint32_t reserved1;
    uint64_t weight;
};

static_assert(std::is_trivially_copyable_v<LiveHeader> && std::is_standard_layout_v<LiveHeader>);
static_assert(std::is_trivially_copyable_v<FoldTerm> && std::is_standard_layout_v<FoldTerm>);
static_assert(sizeof(LiveHeader) == 32);
static_assert(sizeof(FoldTerm) == 24);
inline constexpr uint32_t kMaxFoldTerms = 1u << 16;
inline constexpr uint32_t kMaxSlots = 1u << 16;

static_assert(std::is_trivially_copyable_v<SegmentHeader> && std::is_standard_layout_v<SegmentHeader>);
static_assert(std::is_trivially_copyable_v<ProfileHeader> && std::is_standard_layout_v<ProfileHeader>);
static_assert(std::is_trivially_copyable_v<StackRecord> && std::is_standard_layout_v<StackRecord>);
static_assert(sizeof(ProfileHeader) == 56);
static_assert(sizeof(StackRecord) == 56);
inline constexpr uint32_t kMaxProfileDepth = 64;
inline constexpr uint32_t kMaxProfileStacks = 1u << 20;
static_assert(std::is_trivially_copyable_v<DescEntry> && std::is_standard_layout_v<DescEntry>);
static_assert(std::is_trivially_copyable_v<ValuesHeader> && std::is_standard_layout_v<ValuesHeader>);
static_assert(sizeof(SegmentHeader) == 128);
static_assert(sizeof(DescEntry) == 32);
static_assert(sizeof(ValuesHeader) == 16);
static_assert(offsetof(SegmentHeader, seq) % 4 == 0 && offsetof(SegmentHeader, request) % 4 == 0);
static_assert(std::atomic_ref<uint32_t>::required_alignment <= 4);
static_assert(std::atomic_ref<uint64_t>::required_alignment <= 8);

constexpr uint32_t align8(uint64_t n) { return static_cast<uint32_t>((n + 7) & ~uint64_t{7}); }

}  // namespace gometrics::layout
