// Agent side of the segment: creates /dev/shm/gometrics.<pid>, writes the
// static part (header, Description table, strings, histogram edges) once and
// publishes values under the seqlock. Runs in the agent's cold paths only: it
// never allocates and never throws; failures come back as an errno value.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "kept_file.h"
#include "layout.h"

namespace gometrics::ipc {

struct MetricSpec {
    std::string_view name;
    std::string_view description;
    layout::Kind kind;
    bool cumulative;
    std::span<const double> bounds;  // histogram edges, empty for scalars
    layout::Aggregation aggregation = layout::kAggUnknown;
};

// The live region (layout::LiveHeader): thread slots and how values fold
// from them.
struct LiveSpec {
    uint32_t slot_count;  // slots that fit
    uint32_t slot_size;   // bytes per slot, a multiple of 64
    uint32_t term_count;
    // Writes the term_count terms in place, before readers may look: the
    // table is built in the segment, never as a copy of its own (fresh
    // pages that every short process would pay for; docs/overhead.md).
    void (*fill_terms)(void* ctx, layout::FoldTerm* out) noexcept;
    void* ctx;
};

// Words (8 bytes) that a metric's value occupies in the values region.
constexpr size_t value_words(const MetricSpec& m) {
    return m.kind == layout::kKindFloat64Histogram ? m.bounds.size() - 1 : 1;
}

class SegmentWriter {
public:
    SegmentWriter() = default;
    SegmentWriter(const SegmentWriter&) = delete;
    SegmentWriter& operator=(const SegmentWriter&) = delete;

    // Creates the segment for `pid` (O_CREAT|O_EXCL|O_NOFOLLOW, 0600), with a
    // profile region of profile_bytes (0: none). A segment left under the
    // same name by an earlier image of this pid (exec) or a dead process
    // whose pid was reused is replaced. Returns 0 or errno.
    // A live region too when `live` is given (its slots get their pages only
    // when reserved: reserve_slot()).
    [[nodiscard]] int create(std::span<const MetricSpec> metrics, int pid, uint64_t proc_start_ticks,
                             uint64_t start_time_ns, uint32_t interval_ms, size_t profile_bytes = 0,
                             const LiveSpec* live = nullptr) noexcept;

    bool ok() const noexcept { return base_ != nullptr; }
    size_t mapped_bytes() const noexcept { return size_; }  // the segment's size, 0 before create
    // Total words of all values, in table order; `words` passed to publish().
    size_t payload_words() const noexcept { return payload_words_; }

    // One snapshot: `words` (payload_words() of them, each metric at its
    // offset in table order) copied under the seqlock, then readers woken.
    // remainder: payload_words() more (layout::LiveHeader), or null.
    void publish(const uint64_t* words, uint64_t snapshot_seq, uint64_t time_ns,
                 const uint64_t* remainder = nullptr) noexcept;

    // The profile region's records with their pages reserved, as slots are:
    // false if that cannot be done now (a full tmpfs). The region's header is
    // reserved from the start. Idempotent; any thread; keeps errno. It makes
    // a system call (madvise, or fallocate before Linux 5.14): the caller
    // decides whether the program's filter allows one.
    bool reserve_profile() noexcept;
    bool profile_reserved() const noexcept { return profile_reserved_.load(std::memory_order_acquire); }

    // Slot i of the live region with its pages reserved (so that no store
    // into it can meet a full tmpfs), or null. Then slot_used(i) tells
    // readers to fold it. Cold paths of any thread; no allocation. The
    // slots are mapped a chunk at a time, as the first of a chunk is
    // reserved: an address space limit counts a mapping whether or not it
    // has pages, and most processes use a few of them.
    void* reserve_slot(uint32_t i) noexcept;
    void slot_used(uint32_t i) noexcept;
    uint32_t slot_count() const noexcept;
    void* slot_address(uint32_t i) const noexcept;  // slot i once its chunk is mapped (a slot of it reserved), else null

    // The profile region (layout::ProfileHeader first), or null.
    void* profile_region() noexcept;

    uint32_t request() const noexcept;  // the only word the agent reads back
    uint32_t* request_word() noexcept;  // for FUTEX_WAIT
    void set_state(uint32_t bits, bool on) noexcept;

    // Forget the mapping without touching the name (a forked child must not
    // write its parent's segment: blank private pages take its place, see
    // writer.cpp); unlink() removes the name only (threads
    // that outlive the exit path still write their slots in the mapping).
    void abandon() noexcept;
    // Closes the kept descriptor and keeps the mapping (a detached agent:
    // threads may still count in their slots there).
    void close_file() noexcept { file_.close(); }
    // shm_dir: a descriptor of /dev/shm, which still names it after the
    // program chroot()ed; -1 to go by the name. False when the name stays
    // (its removal refused); true when gone, or not this process's to remove.
    bool unlink(int shm_dir = -1) noexcept;
    // Makes `uid` the segment's owner, so that the process still removes it
    // at exit after dropping privileges (/dev/shm is sticky). 0 or errno.
    int give_to(uid_t uid) noexcept;

private:
    layout::SegmentHeader* header() const noexcept { return static_cast<layout::SegmentHeader*>(base_); }
    layout::LiveHeader* live_header() const noexcept;
    // fallocate of [at, at + bytes) through the kept descriptor: 0 or an errno.
    int reserve_pages(uint64_t at, uint64_t bytes) noexcept;
    // Chunk k's file range, whole pages: a page at its ends may also be its
    // neighbour's, mapped twice (MAP_SHARED: the same page either way).
    void chunk_pages(uint32_t k, uint64_t& begin, uint64_t& bytes) const noexcept;
    unsigned char* map_chunk(uint32_t k) noexcept;

    void* base_ = nullptr;
    size_t size_ = 0;        // the whole segment's
    size_t base_bytes_ = 0;  // base_'s mapping: all but the slots
    // The layout as created, kept here: the file is writable by the user's
    // other processes, and an offset read back from its header could send
    // a store anywhere. Offsets from base_; 0 for a region there is not.
    uint64_t values_off_ = 0, profile_off_ = 0, live_off_ = 0, slots_off_ = 0;
    uint32_t slot_count_ = 0, slot_size_ = 0;
    // The slots' mappings: base_ maps everything before them. Never
    // unmapped (a thread keeps its slot's address), only blanked by abandon.
    static constexpr uint32_t kSlotChunks = 64;
    uint32_t chunk_slots_ = 0;
    std::atomic<unsigned char*> chunks_[kSlotChunks] = {};
    // The segment's descriptor, kept for reserve_slot's fallocate and mmap.
    sys::KeptFile file_;
    size_t payload_words_ = 0;
    int owner_pid_ = 0;
    // The profile's records, [records_begin_, records_end_) in the segment,
    // and whether their pages are reserved.
    uint64_t records_begin_ = 0, records_end_ = 0;
    std::atomic<bool> profile_reserved_{false};
};

// "/gometrics.<pid>" for shm_open, into a caller buffer (no allocation).
void shm_name(int pid, char (&out)[32]) noexcept;

}  // namespace gometrics::ipc
