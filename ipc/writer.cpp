// Agent side of the segment; see writer.h and layout.h.
#include "writer.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>

#include "seqlock.h"

namespace gometrics::ipc {

namespace {

using namespace layout;

struct Sizes {
    uint64_t strings = 0, bounds = 0, words = 0;
};

constexpr uint64_t page_ceil(uint64_t n) { return (n + 4095) & ~uint64_t{4095}; }

// Maps pages about to be written, all in one call instead of a fault each: a
// fault is the dearer part of a page (docs/overhead.md). A kernel without
// the advice (before 5.14) leaves them to fault.
void populate(void* at, uint64_t bytes) {
    const int saved = errno;
    if (bytes) (void)madvise(at, bytes, MADV_POPULATE_WRITE);
    errno = saved;
}

Sizes measure(std::span<const MetricSpec> metrics) {
    Sizes s;
    for (const auto& m : metrics) {
        s.strings += m.name.size() + m.description.size();
        s.bounds += m.bounds.size() * sizeof(double);
        s.words += value_words(m);
    }
    return s;
}

// Opens the name exclusively; replaces a leftover of ours (an earlier image
// of this pid before exec, or a dead process whose pid we now have).
int open_exclusive(const char* name) {
    constexpr int kFlags = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = shm_open(name, kFlags, 0600);
    if (fd >= 0 || errno != EEXIST) return fd;
    int old = shm_open(name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
    if (old < 0) return -1;
    struct stat st;
    const bool ours = fstat(old, &st) == 0 && st.st_uid == geteuid();
    close(old);
    if (!ours) {
        errno = EEXIST;
        return -1;
    }
    shm_unlink(name);
    return shm_open(name, kFlags, 0600);
}

long futex_wake_all(uint32_t* word) {
    return syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace

void shm_name(int pid, char (&out)[32]) noexcept {
    // Hand-rolled to stay allocation- and locale-free in the agent.
    char digits[16];
    int n = 0;
    unsigned v = static_cast<unsigned>(pid);
    do {
        digits[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v && n < 15);
    size_t p = 0;
    out[p++] = '/';
    for (const char* c = kShmPrefix; *c; ++c) out[p++] = *c;
    while (n) out[p++] = digits[--n];
    out[p] = '\0';
}

int SegmentWriter::create(std::span<const MetricSpec> metrics, int pid, uint64_t proc_start_ticks,
                          uint64_t start_time_ns, uint32_t interval_ms, size_t profile_bytes,
                          const LiveSpec* live) noexcept {
    const Sizes s = measure(metrics);
    const uint64_t desc_off = align8(sizeof(SegmentHeader));
    const uint64_t strings_off = align8(desc_off + metrics.size() * sizeof(DescEntry));
    const uint64_t bounds_off = align8(strings_off + s.strings);
    const uint64_t values_off = align8(bounds_off + s.bounds);
    const uint64_t values_size = sizeof(ValuesHeader) + s.words * 8 * (live ? 2 : 1);
    const uint64_t profile_off = profile_bytes ? align8(values_off + values_size) : 0;
    const uint64_t static_end = align8(profile_bytes ? profile_off + profile_bytes : values_off + values_size);
    // The live region: its header and terms, then the slots, page-aligned so
    // that reserving one slot's pages reserves nobody else's.
    uint64_t live_off = 0, slots_off = 0, total = static_end;
    if (live) {
        if (live->term_count > kMaxFoldTerms || live->slot_count > kMaxSlots || live->slot_size % 64) return EINVAL;
        live_off = (static_end + 4095) & ~uint64_t{4095};  // slots are 64-byte aligned objects
        slots_off = (sizeof(LiveHeader) + uint64_t{live->term_count} * sizeof(FoldTerm) + 4095) & ~uint64_t{4095};
        total = live_off + slots_off + uint64_t{live->slot_count} * live->slot_size;
    }
    if (total > kMaxSegmentSize || metrics.size() > kMaxMetrics) return EFBIG;

    char name[32];
    shm_name(pid, name);
    const int fd = open_exclusive(name);
    if (fd < 0) return errno;
    // Reserve the pages now: on a full tmpfs ftruncate would succeed and the
    // first store into the mapping would raise SIGBUS in the host process.
    // All but the slots and the profile's records, which get theirs when
    // used (reserve_slot, reserve_profile): most processes never fill them.
    const uint64_t records_begin =
        profile_bytes ? std::min(page_ceil(profile_off + sizeof(ProfileHeader)), static_end) : static_end;
    const auto fail = [&](int err) {
        close(fd);
        shm_unlink(name);
        return err;
    };
    if (const int err = posix_fallocate(fd, 0, static_cast<off_t>(records_begin)); err != 0) return fail(err);
    if (live)
        if (const int err = posix_fallocate(fd, static_cast<off_t>(live_off), static_cast<off_t>(slots_off)); err != 0)
            return fail(err);
    if (ftruncate(fd, static_cast<off_t>(total)) != 0) return fail(errno);
    // The slots are left to reserve_slot, a chunk at a time.
    const uint64_t base_bytes = live ? live_off + slots_off : total;
    void* base = mmap(nullptr, base_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const int map_err = errno;
    records_begin_ = records_begin;
    records_end_ = static_end;
    profile_reserved_.store(records_begin == static_end, std::memory_order_relaxed);
    // Kept (at a high number) to reserve those pages when they are used.
    if ((live || records_begin != static_end) && base != MAP_FAILED) (void)file_.adopt(fd);
    close(fd);
    if (base == MAP_FAILED) {
        shm_unlink(name);
        return map_err;
    }

    auto* bytes = static_cast<unsigned char*>(base);
    // The reserved pages: all written below or at the first snapshot.
    populate(bytes, records_begin);
    if (live) populate(bytes + live_off, slots_off);
    auto* h = static_cast<SegmentHeader*>(base);
    h->version = kLayoutVersion;
    h->header_size = sizeof(SegmentHeader);
    h->total_size = total;
    h->pid = pid;
    h->desc_count = static_cast<uint32_t>(metrics.size());
    h->start_time_ns = start_time_ns;
    h->proc_start_ticks = proc_start_ticks;
    h->desc_offset = static_cast<uint32_t>(desc_off);
    h->desc_entry_size = sizeof(DescEntry);
    h->strings_offset = static_cast<uint32_t>(strings_off);
    h->strings_size = static_cast<uint32_t>(s.strings);
    h->bounds_offset = static_cast<uint32_t>(bounds_off);
    h->bounds_size = static_cast<uint32_t>(s.bounds);
    h->values_offset = static_cast<uint32_t>(values_off);
    h->values_size = static_cast<uint32_t>(values_size);
    h->interval_ms = interval_ms;
    h->profile_offset = static_cast<uint32_t>(profile_off);
    h->profile_size = static_cast<uint32_t>(profile_bytes);
    if (live) {
        h->live_offset = static_cast<uint32_t>(live_off);
        h->live_size = static_cast<uint32_t>(total - live_off);
        auto* lh = reinterpret_cast<LiveHeader*>(bytes + live_off);
        lh->slot_count = live->slot_count;
        lh->slot_size = live->slot_size;
        lh->slots_offset = static_cast<uint32_t>(slots_off);
        lh->term_count = live->term_count;
        lh->terms_offset = sizeof(LiveHeader);
        lh->remainder_offset = static_cast<uint32_t>(sizeof(ValuesHeader) + s.words * 8);
        lh->remainder_words = static_cast<uint32_t>(s.words);
        if (live->term_count)
            live->fill_terms(live->ctx, reinterpret_cast<FoldTerm*>(bytes + live_off + sizeof(LiveHeader)));
    }

    auto* desc = reinterpret_cast<DescEntry*>(bytes + desc_off);
    uint32_t str = 0, bnd = 0, val = sizeof(ValuesHeader);
    for (const auto& m : metrics) {
        DescEntry& d = *desc++;
        d.name_offset = str;
        d.name_len = static_cast<uint32_t>(m.name.size());
        std::memcpy(bytes + strings_off + str, m.name.data(), m.name.size());
        str += d.name_len;
        d.desc_offset = str;
        d.desc_len = static_cast<uint32_t>(m.description.size());
        std::memcpy(bytes + strings_off + str, m.description.data(), m.description.size());
        str += d.desc_len;
        d.kind = m.kind;
        d.cumulative = m.cumulative;
        d.aggregation = m.aggregation;
        if (m.kind == kKindFloat64Histogram) {
            d.bounds_offset = bnd;
            d.bucket_count = static_cast<uint32_t>(m.bounds.size());
            std::memcpy(bytes + bounds_off + bnd, m.bounds.data(), m.bounds.size_bytes());
            bnd += static_cast<uint32_t>(m.bounds.size_bytes());
        }
        d.value_offset = val;
        val += static_cast<uint32_t>(value_words(m) * 8);
    }

    // Readers check the magic first: publish it after everything else.
    std::atomic_ref<uint64_t>(h->magic).store(kMagic, std::memory_order_release);

    base_ = base;
    size_ = total;
    base_bytes_ = base_bytes;
    values_off_ = values_off;
    profile_off_ = profile_off;
    live_off_ = live_off;
    slots_off_ = live ? live_off + slots_off : 0;
    slot_count_ = live ? live->slot_count : 0;
    slot_size_ = live ? live->slot_size : 0;
    // An earlier segment's chunks (a detached one's) stay mapped for the
    // threads still holding slots there; this one starts with none.
    chunk_slots_ = std::max<uint32_t>(8, (slot_count_ + kSlotChunks - 1) / kSlotChunks);
    for (auto& c : chunks_) c.store(nullptr, std::memory_order_relaxed);
    payload_words_ = s.words;
    owner_pid_ = pid;
    return 0;
}

void SegmentWriter::publish(const uint64_t* words, uint64_t snapshot_seq, uint64_t time_ns,
                            const uint64_t* remainder) noexcept {
    if (!base_) return;
    auto* values = reinterpret_cast<uint64_t*>(static_cast<unsigned char*>(base_) + values_off_);
    const bool live = live_off_ != 0;
    seqlock::Writer w(&header()->seq);
    w.begin();
    seqlock::store_word(values + 0, snapshot_seq);
    seqlock::store_word(values + 1, time_ns);
    for (size_t i = 0; i < payload_words_; ++i) seqlock::store_word(values + 2 + i, words[i]);
    if (live)
        for (size_t i = 0; i < payload_words_; ++i)
            seqlock::store_word(values + 2 + payload_words_ + i, remainder ? remainder[i] : 0);
    w.end();
    futex_wake_all(&header()->seq);
}

LiveHeader* SegmentWriter::live_header() const noexcept {
    if (!base_ || !live_off_) return nullptr;
    return reinterpret_cast<LiveHeader*>(static_cast<unsigned char*>(base_) + live_off_);
}

uint32_t SegmentWriter::slot_count() const noexcept { return base_ ? slot_count_ : 0; }

void SegmentWriter::chunk_pages(uint32_t k, uint64_t& begin, uint64_t& bytes) const noexcept {
    const uint64_t first = uint64_t{k} * chunk_slots_;
    const uint64_t end = std::min<uint64_t>(first + chunk_slots_, slot_count_);
    begin = (slots_off_ + first * slot_size_) & ~uint64_t{4095};
    bytes = page_ceil(slots_off_ + end * slot_size_) - begin;
}

unsigned char* SegmentWriter::map_chunk(uint32_t k) noexcept {
    if (unsigned char* c = chunks_[k].load(std::memory_order_acquire)) return c;
    const int fd = file_.fd();
    if (fd < 0) return nullptr;
    uint64_t begin, bytes;
    chunk_pages(k, begin, bytes);
    const int saved = errno;
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(begin));
    errno = saved;
    if (m == MAP_FAILED) return nullptr;
    unsigned char* mapped = nullptr;
    if (!chunks_[k].compare_exchange_strong(mapped, static_cast<unsigned char*>(m), std::memory_order_acq_rel)) {
        munmap(m, bytes);  // another thread's came first: nobody has an address in ours
        errno = saved;
        return mapped;
    }
    return static_cast<unsigned char*>(m);
}

void* SegmentWriter::slot_address(uint32_t i) const noexcept {
    if (i >= slot_count()) return nullptr;
    unsigned char* chunk = chunks_[i / chunk_slots_].load(std::memory_order_acquire);
    if (!chunk) return nullptr;
    uint64_t begin, bytes;
    chunk_pages(i / chunk_slots_, begin, bytes);
    return chunk + (slots_off_ + uint64_t{i} * slot_size_ - begin);
}

int SegmentWriter::reserve_pages(uint64_t at, uint64_t bytes) noexcept {
    const int fd = file_.fd();
    if (fd < 0) return EBADF;
    int err;
    do  // a signal may interrupt it: only a full tmpfs is final
        err = posix_fallocate(fd, static_cast<off_t>(at), static_cast<off_t>(bytes));
    while (err == EINTR);
    return err;
}

bool SegmentWriter::reserve_profile() noexcept {
    if (profile_reserved_.load(std::memory_order_acquire)) return true;
    if (!base_) return false;
    const int saved_errno = errno;
    void* at = static_cast<unsigned char*>(base_) + records_begin_;
    const size_t bytes = records_end_ - records_begin_;
    // Through the mapping: no descriptor needed (a program that closed every
    // descriptor it did not open keeps its profile), and an error, never a
    // SIGBUS, when tmpfs cannot give the pages. Before Linux 5.14: fallocate.
    bool ok = madvise(at, bytes, MADV_POPULATE_WRITE) == 0;
    if (!ok && errno == EINVAL) ok = reserve_pages(records_begin_, bytes) == 0;
    errno = saved_errno;
    if (ok) profile_reserved_.store(true, std::memory_order_release);
    return ok;
}

void* SegmentWriter::reserve_slot(uint32_t i) noexcept {
    if (i >= slot_count()) return nullptr;
    // Mapped first: a mapping refused (RLIMIT_AS) then leaves no tmpfs pages behind.
    if (!map_chunk(i / chunk_slots_) || reserve_pages(slots_off_ + uint64_t{i} * slot_size_, slot_size_) != 0)
        return nullptr;
    return slot_address(i);
}

void SegmentWriter::slot_used(uint32_t i) noexcept {
    LiveHeader* lh = live_header();
    if (!lh) return;
    std::atomic_ref<uint32_t> used(lh->slots_used);
    uint32_t n = used.load(std::memory_order_relaxed);
    while (n < i + 1 && !used.compare_exchange_weak(n, i + 1, std::memory_order_release, std::memory_order_relaxed)) {
    }
}

void* SegmentWriter::profile_region() noexcept {
    if (!base_ || !profile_off_) return nullptr;
    return static_cast<unsigned char*>(base_) + profile_off_;
}

uint32_t SegmentWriter::request() const noexcept {
    if (!base_) return 0;
    return std::atomic_ref<uint32_t>(header()->request).load(std::memory_order_relaxed);
}

uint32_t* SegmentWriter::request_word() noexcept { return base_ ? &header()->request : nullptr; }

void SegmentWriter::set_state(uint32_t bits, bool on) noexcept {
    if (!base_) return;
    std::atomic_ref<uint32_t> st(header()->state);
    if (on)
        st.fetch_or(bits, std::memory_order_release);
    else
        st.fetch_and(~bits, std::memory_order_release);
}

void SegmentWriter::abandon() noexcept {
    // Not unmapped: a thread of the parent interrupted inside a hook by a
    // signal handler that forked resumes here in the child, still holding a
    // slot of this mapping. Blank private pages at the same address take
    // its last count harmlessly, and cost no memory until written.
    const int saved_errno = errno;
    const auto blank = [](void* at, size_t bytes) {
        if (mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) ==
            MAP_FAILED)
            munmap(at, bytes);
    };
    if (base_) blank(base_, base_bytes_);
    for (uint32_t k = 0; k < kSlotChunks; ++k)
        if (unsigned char* chunk = chunks_[k].exchange(nullptr, std::memory_order_acq_rel)) {
            uint64_t begin, bytes;
            chunk_pages(k, begin, bytes);
            blank(chunk, bytes);
        }
    errno = saved_errno;
    file_.close();
    base_ = nullptr;
    size_ = base_bytes_ = 0;
    values_off_ = profile_off_ = live_off_ = slots_off_ = 0;
    slot_count_ = slot_size_ = 0;
}

int SegmentWriter::give_to(uid_t uid) noexcept {
    const int fd = file_.fd();
    if (fd < 0) return EBADF;
    return fchown(fd, uid, static_cast<gid_t>(-1)) == 0 ? 0 : errno;
}

bool SegmentWriter::unlink(int shm_dir) noexcept {
    // Only the process that created the name removes it: a forked child
    // inherits this object but owns a different name.
    // The mapping stays: threads that outlive the exit path still count in
    // their slots there, and a crash handler may still write.
    if (!base_ || owner_pid_ != getpid()) return true;
    char name[32];
    shm_name(owner_pid_, name);
    const int saved = errno;
    const bool gone = (shm_dir >= 0 && unlinkat(shm_dir, name + 1, 0) == 0) || shm_unlink(name) == 0 || errno == ENOENT;
    errno = saved;
    return gone;
}

}  // namespace gometrics::ipc
