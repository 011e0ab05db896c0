// The reader library's segment protocol: mapping a segment, validating it
// and reading coherent snapshots; see reader.h (finding processes and their
// segments is processes.cpp's). Everything read from the segment is
// untrusted: a truncated, zeroed, foreign or corrupt segment is an Error.
#include "reader.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "clocks.h"
#include "files.h"
#include "shrink_guard.h"
#include "layout.h"
#include "seqlock.h"

namespace gometrics {

using namespace layout;

const char* to_string(ValueKind k) noexcept {
    switch (k) {
        case ValueKind::Uint64: return "uint64";
        case ValueKind::Float64: return "float64";
        case ValueKind::Float64Histogram: return "float64-histogram";
        case ValueKind::Bad: break;
    }
    return "bad";
}

const char* to_string(gometrics::Aggregation a) noexcept {
    switch (a) {
        case gometrics::Aggregation::Sum: return "sum";
        case gometrics::Aggregation::Max: return "max";
        case gometrics::Aggregation::None: return "none";
        case gometrics::Aggregation::Unknown: break;
    }
    return "unknown";
}

gometrics::Aggregation aggregation_from(std::string_view text) noexcept {
    using enum gometrics::Aggregation;
    for (gometrics::Aggregation a : {Sum, Max, None})
        if (text == to_string(a)) return a;
    return Unknown;
}

namespace {

Error err(const std::string& path, const std::string& what) { return Error{path + ": " + what}; }

bool within(uint64_t off, uint64_t len, uint64_t limit) { return off <= limit && len <= limit - off; }

// Printable UTF-8 without control characters: a name or description that
// is anything else means the segment is not what it claims to be.
bool clean_text(std::string_view s) {
    return std::none_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

bool valid_name(std::string_view n) {
    return n.size() >= 3 && n.front() == '/' && n.find(':') != std::string_view::npos && clean_text(n);
}

}  // namespace

// Writable when it may be (a reader asks for fresh snapshots through the
// segment), else read-only; never anything but a regular file: anyone may
// put a FIFO by that name in /dev/shm, whose open would wait for a writer.
int Reader::open_fd(const std::string& path) {
    int fd = sys::open_regular(path.c_str(), O_RDWR | O_NOFOLLOW);
    if (fd < 0 && errno == EACCES) fd = sys::open_regular(path.c_str(), O_RDONLY | O_NOFOLLOW);
    return fd;
}

Result<Reader> Reader::open_path(const std::string& path, int expected_pid) {
    const int fd = open_fd(path);
    if (fd < 0) return err(path, sys::open_error(errno));
    return map_and_validate(fd, path, expected_pid);
}

Result<Reader> Reader::map_and_validate(int fd, const std::string& path, int expected_pid) {
    const bool writable = (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        return err(path, std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return err(path, "not a regular file");
    }
    if (st.st_size < static_cast<off_t>(sizeof(SegmentHeader))) {
        ::close(fd);
        return err(path, "truncated segment (" + std::to_string(st.st_size) + " bytes, smaller than a header)");
    }
    if (static_cast<uint64_t>(st.st_size) > kMaxSegmentSize) {
        ::close(fd);
        return err(path, "segment too large to be ours (" + std::to_string(st.st_size) + " bytes)");
    }
    const size_t size = static_cast<size_t>(st.st_size);
    void* base = mmap(nullptr, size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    const int map_err = errno;
    ::close(fd);
    if (base == MAP_FAILED) return err(path, std::string("mmap: ") + std::strerror(map_err));

    Reader r;
    r.base_ = base;
    r.size_ = size;
    r.writable_ = writable;
    r.path_ = path;
    r.faults_seen_ = sys::shrink_faults();
    if (auto v = r.validate(); !v) return v.error();
    if (auto v = r.intact(); !v) return v.error();
    if (expected_pid >= 0 && r.pid_ != expected_pid)
        return err(path, "segment names pid " + std::to_string(r.pid_) + ", not " + std::to_string(expected_pid));
    return r;
}

Status Reader::validate() {
    const auto* bytes = static_cast<const unsigned char*>(base_);
    SegmentHeader h;
    std::memcpy(&h, bytes, sizeof h);
    h.magic = std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(base_)).load(std::memory_order_acquire);
    if (h.magic == 0) return err(path_, "segment not initialised (zero magic): the agent is starting or died starting");
    if (h.magic != kMagic) return err(path_, "not a gometrics segment (bad magic)");
    if (h.version != kLayoutVersion)
        return err(path_, "unsupported layout version " + std::to_string(h.version) + " (this reader knows " +
                              std::to_string(kLayoutVersion) + ")");
    if (h.header_size < sizeof(SegmentHeader) || h.header_size > size_) return err(path_, "corrupt header size");
    if (h.total_size > size_) return err(path_, "truncated segment (header says " + std::to_string(h.total_size) +
                                                    " bytes, file has " + std::to_string(size_) + ")");
    const uint64_t total = h.total_size;
    if (h.desc_count > kMaxMetrics) return err(path_, "corrupt segment: absurd metric count " + std::to_string(h.desc_count));
    if (h.desc_entry_size < sizeof(DescEntry) || h.desc_entry_size > 1024)
        return err(path_, "corrupt segment: bad descriptor size");
    if (!within(h.desc_offset, uint64_t(h.desc_count) * h.desc_entry_size, total) ||
        !within(h.strings_offset, h.strings_size, total) || !within(h.bounds_offset, h.bounds_size, total) ||
        !within(h.values_offset, h.values_size, total) || h.values_offset % 8 || h.bounds_offset % 8 ||
        h.values_size < sizeof(ValuesHeader) || h.values_size % 8)
        return err(path_, "corrupt segment: a region lies outside the segment");

    if (h.profile_offset && (!within(h.profile_offset, h.profile_size, total) || h.profile_offset % 8 ||
                             h.profile_size % 8 || h.profile_size < sizeof(ProfileHeader)))
        return err(path_, "corrupt segment: the profile region lies outside the segment");
    profile_offset_ = h.profile_offset;
    profile_size_ = h.profile_offset ? h.profile_size : 0;

    pid_ = h.pid;
    start_time_ns_ = h.start_time_ns;
    proc_start_ticks_ = h.proc_start_ticks;
    interval_ms_ = h.interval_ms;
    const char* strings = reinterpret_cast<const char*>(bytes + h.strings_offset);
    descs_.reserve(h.desc_count);
    entries_.reserve(h.desc_count);
    bounds_.reserve(h.desc_count);
    index_.reserve(h.desc_count);
    for (uint32_t i = 0; i < h.desc_count; ++i) {
        DescEntry d;
        std::memcpy(&d, bytes + h.desc_offset + uint64_t(i) * h.desc_entry_size, sizeof d);
        // Built only for an error: an open checks every metric.
        const auto where = [i] { return "corrupt segment: metric #" + std::to_string(i) + " "; };
        if (!within(d.name_offset, d.name_len, h.strings_size) || !within(d.desc_offset, d.desc_len, h.strings_size))
            return err(path_, where() + "has text outside the string table");
        Description desc;
        desc.name.assign(strings + d.name_offset, d.name_len);
        desc.description.assign(strings + d.desc_offset, d.desc_len);
        if (!valid_name(desc.name) || !clean_text(desc.description)) return err(path_, where() + "has a malformed name");
        // A kind this reader does not know (a newer agent) reads as Bad.
        desc.kind = d.kind <= kKindFloat64Histogram ? static_cast<ValueKind>(d.kind) : ValueKind::Bad;
        desc.cumulative = d.cumulative != 0;
        // 0 from an agent older than the field; a value this reader does not know (a newer agent) too.
        desc.aggregation = d.aggregation <= kAggNone ? static_cast<gometrics::Aggregation>(d.aggregation) : gometrics::Aggregation::Unknown;

        Entry e{d.value_offset, 1};
        std::vector<double> edges;
        if (desc.kind == ValueKind::Float64Histogram) {
            if (d.bucket_count < 2 || d.bucket_count > kMaxHistogramBuckets || d.bounds_offset % 8 ||
                !within(d.bounds_offset, uint64_t(d.bucket_count) * 8, h.bounds_size))
                return err(path_, where() + "has bad histogram buckets");
            edges.resize(d.bucket_count);
            std::memcpy(edges.data(), bytes + h.bounds_offset + d.bounds_offset, edges.size() * 8);
            for (size_t b = 0; b < edges.size(); ++b)
                if (std::isnan(edges[b]) || (b && !(edges[b] > edges[b - 1])))
                    return err(path_, where() + "has histogram edges that do not increase");
            e.words = d.bucket_count - 1;
        }
        if (d.value_offset % 8 || d.value_offset < sizeof(ValuesHeader) ||
            !within(d.value_offset, uint64_t(e.words) * 8, h.values_size))
            return err(path_, where() + "has its value outside the values region");
        if (!index_.emplace(desc.name, descs_.size()).second) return err(path_, where() + "duplicates " + desc.name);
        descs_.push_back(std::move(desc));
        entries_.push_back(e);
        bounds_.push_back(std::move(edges));
    }
    values_offset_ = h.values_offset;
    values_size_ = h.values_size;
    if (h.live_offset) {
        if (Status st = validate_live(); !st) return st;
    }
    return Ok{};
}

Status Reader::validate_live() {
    const auto* bytes = static_cast<const unsigned char*>(base_);
    SegmentHeader h;
    std::memcpy(&h, bytes, sizeof h);
    const auto bad = [&](const char* what) { return err(path_, std::string("corrupt segment: live region: ") + what); };
    if (!within(h.live_offset, h.live_size, h.total_size) || h.live_offset % 8 || h.live_size < sizeof(LiveHeader))
        return bad("outside the segment");
    LiveHeader lh;
    std::memcpy(&lh, bytes + h.live_offset, sizeof lh);
    if (lh.slot_count > kMaxSlots || lh.slot_size == 0 || lh.slot_size % 64 || lh.slot_size > (1u << 20) ||
        lh.slots_offset % 64 || !within(lh.slots_offset, uint64_t(lh.slot_count) * lh.slot_size, h.live_size))
        return bad("bad slots");
    if (lh.term_count > kMaxFoldTerms || lh.terms_offset % 8 ||
        !within(lh.terms_offset, uint64_t(lh.term_count) * sizeof(FoldTerm), h.live_size))
        return bad("bad terms");
    const uint64_t payload = (h.values_size - sizeof(ValuesHeader)) / 8;
    if (lh.remainder_offset % 8 || lh.remainder_words != payload / 2 ||
        lh.remainder_offset != sizeof(ValuesHeader) + uint64_t(lh.remainder_words) * 8)
        return bad("bad remainder");
    Live live;
    live.slots_offset = h.live_offset + lh.slots_offset;
    live.slot_count = lh.slot_count;
    live.slot_size = lh.slot_size;
    live.used_offset = h.live_offset + offsetof(LiveHeader, slots_used);
    live.remainder_word = lh.remainder_offset / 8;
    live.word_is_float.assign(values_size_ / 8, 0);
    // One copy of the terms (the agent may rewrite them meanwhile), checked,
    // then stored in pass order, stably: a counting sort, as a pass is one
    // byte.
    const uint32_t n = lh.term_count;
    std::unique_ptr<FoldTerm[]> terms(new FoldTerm[n]);
    if (n) std::memcpy(terms.get(), bytes + h.live_offset + lh.terms_offset, size_t{n} * sizeof(FoldTerm));
    std::array<uint32_t, 257> next{};
    for (uint32_t i = 0; i < n; ++i) {
        const FoldTerm& t = terms[i];
        const uint8_t kind = t.is_float ? 2 : 1;
        if (t.value_word >= lh.remainder_words || t.slot_word >= lh.slot_size / 8 || t.is_float > 1)
            return bad("a term outside its value or slot");
        uint8_t& k = live.word_is_float[2 + t.value_word];
        if (k && k != kind) return bad("a value folded as both integer and float");
        k = kind;
        ++next[t.pass + 1u];
    }
    for (size_t p = 1; p < next.size(); ++p) next[p] += next[p - 1];
    live.value_word.resize(n);
    live.slot_word.resize(n);
    live.pass.resize(n);
    live.weight.resize(n);
    for (uint32_t i = 0; i < n; ++i) {
        const FoldTerm& t = terms[i];
        const uint32_t at = next[t.pass]++;
        live.value_word[at] = 2 + t.value_word;
        live.slot_word[at] = t.slot_word;
        live.pass[at] = t.pass;
        live.weight[at] = t.weight;
    }
    // Where each pass begins, and the distinct slot words it loads.
    for (size_t t = 0; t < live.pass.size(); ++t)
        if (t == 0 || live.pass[t] != live.pass[t - 1]) live.pass_begin.push_back(static_cast<uint32_t>(t));
    live.pass_begin.push_back(static_cast<uint32_t>(live.pass.size()));
    live.pass_words.reserve(live.slot_word.size());
    for (size_t p = 0; p + 1 < live.pass_begin.size(); ++p) {
        live.pass_words_begin.push_back(static_cast<uint32_t>(live.pass_words.size()));
        std::vector<uint8_t> seen(lh.slot_size / 8);
        for (size_t t = live.pass_begin[p]; t < live.pass_begin[p + 1]; ++t)
            if (!seen[live.slot_word[t]]) {
                seen[live.slot_word[t]] = 1;
                live.pass_words.push_back(live.slot_word[t]);
            }
    }
    live.pass_words_begin.push_back(static_cast<uint32_t>(live.pass_words.size()));
    for (size_t i = 0; i < descs_.size(); ++i)
        descs_[i].live = live.word_is_float[entries_[i].value_offset / 8] != 0;
    live_ = std::move(live);
    return Ok{};
}

void Reader::fold(std::vector<uint64_t>& words) {
    if (live_.value_word.empty()) return;
    const auto* bytes = static_cast<const unsigned char*>(base_);
    const auto used_now = [&] {
        return std::min(__atomic_load_n(reinterpret_cast<const uint32_t*>(bytes + live_.used_offset), __ATOMIC_ACQUIRE),
                        live_.slot_count);
    };
    // Start from the remainder the snapshot published with the values.
    std::vector<uint64_t> acc(words.size(), 0);
    for (size_t w = 2; w < live_.remainder_word && w < words.size(); ++w)
        if (live_.word_is_float[w]) acc[w] = words[live_.remainder_word + (w - 2)];
    // One pass at a time over every slot; each word a pass needs is loaded
    // once per slot, so every term of it sees the same count. The slots in
    // use are counted again at each pass: one claimed since adds only its
    // later passes (it held nothing when the earlier ones were read), so a
    // free on a seen slot of a block allocated on a new one keeps its
    // allocation.
    std::vector<uint64_t> slot_words(live_.slot_size / 8);
    for (size_t p = 0; p + 1 < live_.pass_begin.size(); ++p) {
        const uint32_t used = used_now();
        for (uint32_t i = 0; i < used; ++i) {
            const auto* slot = reinterpret_cast<const uint64_t*>(bytes + live_.slots_offset + uint64_t(i) * live_.slot_size);
            for (size_t k = live_.pass_words_begin[p]; k < live_.pass_words_begin[p + 1]; ++k)
                slot_words[live_.pass_words[k]] = __atomic_load_n(slot + live_.pass_words[k], __ATOMIC_ACQUIRE);
            for (size_t t = live_.pass_begin[p]; t < live_.pass_begin[p + 1]; ++t) {
                const uint64_t v = slot_words[live_.slot_word[t]];
                uint64_t& a = acc[live_.value_word[t]];
                if (live_.word_is_float[live_.value_word[t]] == 2)
                    a = std::bit_cast<uint64_t>(std::bit_cast<double>(a) + double(v) * std::bit_cast<double>(live_.weight[t]));
                else
                    a += v * live_.weight[t];  // modulo 2^64: exact while the true sum is
            }
        }
    }
    for (size_t w = 2; w < live_.remainder_word && w < words.size(); ++w) {
        if (live_.word_is_float[w] == 1)
            words[w] = static_cast<int64_t>(acc[w]) < 0 ? 0 : acc[w];
        else if (live_.word_is_float[w] == 2) {
            if (live_.last_float.size() != words.size()) live_.last_float.assign(words.size(), 0);
            const double v = std::max(std::bit_cast<double>(acc[w]), live_.last_float[w]);
            live_.last_float[w] = v;
            words[w] = std::bit_cast<uint64_t>(v);
        }
    }
}

Reader::Reader(Reader&& o) noexcept { *this = std::move(o); }

Reader& Reader::operator=(Reader&& o) noexcept {
    if (this != &o) {
        unmap();
        base_ = std::exchange(o.base_, nullptr);
        size_ = std::exchange(o.size_, 0);
        writable_ = o.writable_;
        faults_seen_ = o.faults_seen_;
        shrunk_ = o.shrunk_;
        path_ = std::move(o.path_);
        pid_ = o.pid_;
        start_time_ns_ = o.start_time_ns_;
        proc_start_ticks_ = o.proc_start_ticks_;
        interval_ms_ = o.interval_ms_;
        values_offset_ = o.values_offset_;
        values_size_ = o.values_size_;
        profile_offset_ = o.profile_offset_;
        profile_size_ = o.profile_size_;
        live_ = std::move(o.live_);
        descs_ = std::move(o.descs_);
        entries_ = std::move(o.entries_);
        bounds_ = std::move(o.bounds_);
        index_ = std::move(o.index_);
    }
    return *this;
}

Reader::~Reader() { unmap(); }

void Reader::unmap() {
    if (!base_) return;
    munmap(base_, size_);
}

// A fault in the mapping since the last look means its file shrank under
// it (its writer truncated it, or tmpfs had no page to give): the pages
// read since are zeros, and nothing read from it can be trusted again.
Status Reader::intact() {
    if (!shrunk_ && sys::faulted_since(faults_seen_, base_, size_)) shrunk_ = true;
    faults_seen_ = sys::shrink_faults();
    if (shrunk_) return err(path_, "truncated segment (the file shrank while it was read)");
    return Ok{};
}

uint32_t Reader::state_bits() const {
    auto* h = static_cast<SegmentHeader*>(base_);
    return std::atomic_ref<uint32_t>(h->state).load(std::memory_order_acquire);
}

ProcessState Reader::state() const {
    const uint32_t bits = state_bits();
    return {.publisher_running = (bits & kStatePublisherRunning) != 0,
            .publisher_lazy = (bits & kStatePublisherLazy) != 0,
            .not_interposed = (bits & kStateNotInterposed) != 0,
            .exited = (bits & kStateExited) != 0,
            .attached = (bits & kStateAttached) != 0};
}

bool Reader::exited() const { return state().exited; }

namespace {
// A program allocating answers within a poll's bytes (a fraction of a
// millisecond at the rates that matter).
constexpr int kLazyWaitMs = 2;

// Whether the process's only thread is running now (/proc/PID/stat's state
// R): one that sleeps in a system call answers no request until it wakes.
bool running(int pid) {
    char path[64], buf[512];
    std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = 0;
    const char* paren = std::strrchr(buf, ')');  // the name may hold spaces and parentheses
    return paren && paren[1] == ' ' && paren[2] == 'R';
}
}  // namespace

FreshRequest Reader::RequestFresh() {
    auto* h = static_cast<SegmentHeader*>(base_);
    if (!writable_ || !(state_bits() & (kStatePublisherRunning | kStatePublisherLazy))) return {};
    std::atomic_ref<uint32_t> seq(h->seq);
    const uint32_t before = seq.load(std::memory_order_acquire);
    std::atomic_ref<uint32_t>(h->request).fetch_add(1, std::memory_order_release);
    syscall(SYS_futex, &h->request, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
    // A snapshot started after our request has completed once the generation
    // moves past the next even value after `before`.
    return {(before | 1u) + 1, true};
}

void Reader::AwaitFresh(const FreshRequest& request, int timeout_ms) {
    if (!request.pending) return;
    auto* h = static_cast<SegmentHeader*>(base_);
    // Without a publisher thread the program answers at its next
    // allocations, or not at all while it is blocked: wait a little only if
    // it runs (the live counts are folded fresh regardless).
    if ((state_bits() & kStatePublisherLazy) && live_.slot_count) {
        if (!running(pid_)) return;
        timeout_ms = std::min(timeout_ms, kLazyWaitMs);
    }
    std::atomic_ref<uint32_t> seq(h->seq);
    timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        const uint32_t now = seq.load(std::memory_order_acquire);
        if (int32_t(now - request.target) >= 0) return;
        timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        const int64_t waited_ms = (t.tv_sec - start.tv_sec) * 1000 + (t.tv_nsec - start.tv_nsec) / 1000000;
        if (waited_ms >= timeout_ms) return;
        timespec slice{0, 5 * 1000000};  // re-check at least every 5 ms
        syscall(SYS_futex, &h->seq, FUTEX_WAIT, now, &slice, nullptr, 0);
    }
}

Result<std::vector<uint64_t>> Reader::copy_values(int max_tries) {
    auto* h = static_cast<SegmentHeader*>(base_);
    const auto* src = reinterpret_cast<const uint64_t*>(static_cast<const unsigned char*>(base_) + values_offset_);
    std::vector<uint64_t> words(values_size_ / 8);
    if (seqlock::read_consistent(&h->seq, src, words.data(), words.size(), max_tries) < 0)
    {
        if (auto v = intact(); !v) return v.error();
        return err(path_, "the snapshot never settled (the writer died mid-update or is stuck)");
    }
    fold(words);
    if (auto v = intact(); !v) return v.error();
    return words;
}

Value Reader::decode(size_t i, const std::vector<uint64_t>& words) const {
    Value v;
    v.kind = descs_[i].kind;
    const size_t w = entries_[i].value_offset / 8;
    switch (v.kind) {
        case ValueKind::Uint64: v.u64 = words[w]; break;
        case ValueKind::Float64: v.f64 = std::bit_cast<double>(words[w]); break;
        case ValueKind::Float64Histogram:
            v.hist.buckets = bounds_[i];
            v.hist.counts.assign(words.begin() + w, words.begin() + w + entries_[i].words);
            break;
        case ValueKind::Bad: break;
    }
    return v;
}

Status Reader::Read(std::span<Sample> samples, const ReadOptions& opt) {
    if (opt.fresh_timeout_ms > 0) AwaitFresh(RequestFresh(), opt.fresh_timeout_ms);
    auto words = copy_values(opt.max_tries);
    if (!words) return words.error();
    for (auto& s : samples) {
        const auto it = index_.find(s.name);
        s.value = it == index_.end() ? Value{} : decode(it->second, *words);
    }
    return Ok{};
}

Result<Snapshot> Reader::ReadAll(const ReadOptions& opt) {
    if (opt.fresh_timeout_ms > 0) AwaitFresh(RequestFresh(), opt.fresh_timeout_ms);
    auto words = copy_values(opt.max_tries);
    if (!words) return words.error();
    Snapshot snap;
    snap.seq = (*words)[0];
    snap.time_ns = (*words)[1];
    if (!live_.value_word.empty()) {
        snap.live_time_ns = sys::clock_ns(CLOCK_REALTIME);
    }
    snap.values.reserve(descs_.size());
    for (size_t i = 0; i < descs_.size(); ++i) snap.values.push_back(decode(i, *words));
    return snap;
}

Result<Profile> Reader::ReadProfile(const ReadOptions& opt) {
    if (!profile_size_) return err(path_, "process does not profile (GOMETRICS_PROFILE_RATE=0 and no mutex profiling)");
    if (opt.fresh_timeout_ms > 0) AwaitFresh(RequestFresh(), opt.fresh_timeout_ms);
    auto p = copy_profile(opt);
    if (auto v = intact(); !v) return v.error();
    return p;
}

Result<Profile> Reader::copy_profile(const ReadOptions& opt) {
    auto* region = static_cast<unsigned char*>(base_) + profile_offset_;
    auto* seq = &reinterpret_cast<ProfileHeader*>(region)->seq;
    const auto* src = reinterpret_cast<const uint64_t*>(region);
    // The header, then it and the records in use: the pages of the rest may
    // not exist yet (the agent reserves them at its first record), and a read
    // would make tmpfs give them, or raise SIGBUS when it is full. Records
    // only ever get added, so a second copy that says more in use starts over.
    std::vector<uint64_t> words(sizeof(ProfileHeader) / 8);
    ProfileHeader h;
    const auto sane = [&](const ProfileHeader& x) {
        return x.record_size % 8 == 0 && x.record_size >= sizeof(StackRecord) + 8 && x.record_size <= 64 * 1024 &&
               x.stack_count <= x.max_stacks &&
               within(sizeof(ProfileHeader), uint64_t(x.stack_count) * x.record_size, profile_size_);
    };
    for (int tries = 0;; ++tries) {
        if (tries == opt.max_tries ||
            seqlock::read_consistent(seq, src, words.data(), sizeof(ProfileHeader) / 8, opt.max_tries) < 0)
            return err(path_, "the profile never settled (the writer died mid-update or is stuck)");
        std::memcpy(&h, words.data(), sizeof h);
        if (h.stack_count == 0) break;
        if (!sane(h)) return err(path_, "corrupt profile region");
        const uint64_t in_use = h.stack_count, record_size = h.record_size;
        words.resize((sizeof(ProfileHeader) + in_use * record_size) / 8);
        if (seqlock::read_consistent(seq, src, words.data(), words.size(), opt.max_tries) < 0)
            return err(path_, "the profile never settled (the writer died mid-update or is stuck)");
        std::memcpy(&h, words.data(), sizeof h);
        if (h.stack_count <= in_use && h.record_size == record_size) break;
    }
    Profile p;
    p.time_ns = sys::clock_ns(CLOCK_REALTIME);
    p.heap_rate = h.heap_rate;
    p.mutex_fraction = h.mutex_fraction;
    p.dropped_samples = h.dropped_samples;
    p.untracked_frees = h.untracked_frees;
    if (h.stack_count == 0) return p;
    if (!sane(h)) return err(path_, "corrupt profile region");
    const uint64_t pcs_room = (h.record_size - sizeof(StackRecord)) / 8;
    const auto* bytes = reinterpret_cast<const unsigned char*>(words.data());
    for (uint64_t i = 0; i < h.stack_count; ++i) {
        const unsigned char* rec = bytes + sizeof(ProfileHeader) + i * h.record_size;
        StackRecord r;
        std::memcpy(&r, rec, sizeof r);
        if (r.kind != kStackHeap && r.kind != kStackMutex) continue;  // unused record
        if (r.depth > pcs_room) return err(path_, "corrupt profile region: stack deeper than its record");
        ProfileStack st;
        st.kind = static_cast<ProfileStack::Kind>(r.kind);
        st.pcs.resize(r.depth);
        std::memcpy(st.pcs.data(), rec + sizeof r, r.depth * 8);
        st.alloc_objects = r.alloc_objects;
        st.alloc_bytes = r.alloc_bytes;
        st.free_objects = r.free_objects;
        st.free_bytes = r.free_bytes;
        st.contentions = r.contentions;
        st.delay_ns = r.delay_ns;
        p.stacks.push_back(std::move(st));
    }
    return p;
}

}  // namespace gometrics
