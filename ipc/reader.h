// The reader library: runtime/metrics for another process. Opens the segment
// of a pid, validates every offset, length and count against the mapped size,
// and reads coherent snapshots. What the CLI, the exporters and the tests use.
//
//   auto r = gometrics::Reader::open(pid);
//   if (!r) die(r.error().message);
//   std::vector<gometrics::Sample> s{{"/gc/heap/allocs:bytes", {}}};
//   if (auto st = r->Read(s); !st) die(st.error().message);
//   uint64_t bytes = s[0].value.u64;   // kind Bad when the process lacks the metric
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "metrics.h"
#include "processes.h"
#include "result.h"

namespace gometrics {

struct ReadOptions {
    // Ask the publisher for a new snapshot and wait for it up to this long
    // (0: take the latest published one). A stopped or busy process simply
    // yields the latest snapshot when the wait ends.
    int fresh_timeout_ms = 200;
    int max_tries = 10000;  // seqlock retries before giving up
};

// A pending request for a fresh snapshot (Reader::RequestFresh).
struct FreshRequest {
    uint32_t target = 0;   // the seqlock generation that means "published after the request"
    bool pending = false;  // false: nothing to wait for (no publisher, or read-only segment)
};

// A coherent set of values, all from one published snapshot.
struct Snapshot {
    uint64_t seq = 0;      // snapshots published by the process so far
    uint64_t time_ns = 0;  // CLOCK_REALTIME of the snapshot
    uint64_t live_time_ns = 0;  // CLOCK_REALTIME of the read, for the Description::live values (0: none)
    std::vector<Value> values;  // parallel to Reader::All()
};

// One distinct sampled stack of a process (the profile region).
struct ProfileStack {
    enum Kind : uint32_t { kHeap = 1, kMutex = 2 } kind = kHeap;
    std::vector<uint64_t> pcs;  // leaf first; pcs after the leaf are return addresses
    // Samples as taken, cumulative, not scaled by the sampling rate.
    uint64_t alloc_objects = 0, alloc_bytes = 0;  // heap: sampled allocations
    uint64_t free_objects = 0, free_bytes = 0;    // heap: of which freed (in use = alloc - free)
    uint64_t contentions = 0, delay_ns = 0;       // mutex: sampled contended acquisitions and their wait
};

struct Profile {
    uint64_t time_ns = 0;         // CLOCK_REALTIME of the read
    uint64_t heap_rate = 0;       // mean bytes between heap samples, 0: off
    uint64_t mutex_fraction = 0;  // one contention in this many sampled, 0: off
    uint64_t dropped_samples = 0;  // lost: the stack table was full
    uint64_t untracked_frees = 0;  // sampled objects whose free was not tracked
    std::vector<ProfileStack> stacks;
};

// What the agent says of its process, read now (the segment's state word).
struct ProcessState {
    bool publisher_running = false;  // a publisher thread answers requests for fresh snapshots
    // No publisher thread (a single-threaded program): requests are answered
    // at the program's next allocations; live values are fresh anyway.
    bool publisher_lazy = false;
    bool not_interposed = false;  // the program's malloc bypasses the agent: heap counts are not the truth
    bool exited = false;          // the final snapshot, written at exit (layout.h: for readers that asked) or detach
    bool attached = false;        // loaded by `gometrics-cli attach`: counts from then
};

class Reader {
public:
    // Maps /dev/shm/gometrics.<pid> and validates it.
    static Result<Reader> open(int pid);
    // Same for an arbitrary file (tests, saved segments); expected_pid < 0 skips the pid check.
    static Result<Reader> open_path(const std::string& path, int expected_pid = -1);

    Reader(Reader&&) noexcept;
    Reader& operator=(Reader&&) noexcept;
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;
    ~Reader();

    int pid() const { return pid_; }
    uint64_t start_time_ns() const { return start_time_ns_; }
    uint64_t proc_start_ticks() const { return proc_start_ticks_; }
    uint32_t interval_ms() const { return interval_ms_; }
    ProcessState state() const;
    // The agent said, at the process's exit, that it published its last snapshot.
    bool exited() const;

    // Every metric the process publishes, sorted by name (Go's All()).
    const std::vector<Description>& All() const { return descs_; }

    // Fills each sample by name; a name the process does not publish reads
    // as kind Bad. One call is one coherent snapshot.
    Status Read(std::span<Sample> samples, const ReadOptions& opt = {});
    // All values, parallel to All().
    Result<Snapshot> ReadAll(const ReadOptions& opt = {});

    // The sampled stacks; an Error when the process does not profile.
    bool HasProfile() const { return profile_size_ != 0; }
    Result<Profile> ReadProfile(const ReadOptions& opt = {});

    // ReadOptions::fresh_timeout_ms in two phases, for a reader of many
    // processes (`serve`): ask every process for a snapshot first, then wait
    // for each against one shared deadline, then read with fresh_timeout_ms
    // = 0. The publishers then work in parallel and the whole wait is
    // bounded by one timeout rather than one per process.
    FreshRequest RequestFresh();
    // Returns when the requested snapshot is published or timeout_ms passed
    // (<= 0: just checks).
    void AwaitFresh(const FreshRequest& request, int timeout_ms);

private:
    Reader() = default;
    static int open_fd(const std::string& path);
    void unmap();
    Status intact();
    Result<Profile> copy_profile(const ReadOptions& opt);
    static Result<Reader> map_and_validate(int fd, const std::string& path, int expected_pid);
    uint32_t state_bits() const;
    Status validate();
    Status validate_live();
    Result<std::vector<uint64_t>> copy_values(int max_tries);
    Value decode(size_t index, const std::vector<uint64_t>& words) const;
    // The live fold (layout::LiveHeader) over the copied words.
    void fold(std::vector<uint64_t>& words);

    void* base_ = nullptr;
    size_t size_ = 0;
    bool writable_ = false;
    uint64_t faults_seen_ = 0;  // sys::shrink_faults() at the last look (intact)
    bool shrunk_ = false;
    std::string path_;
    int pid_ = 0;
    uint64_t start_time_ns_ = 0;
    uint64_t proc_start_ticks_ = 0;
    uint32_t interval_ms_ = 0;
    uint32_t values_offset_ = 0;
    uint32_t values_size_ = 0;
    uint32_t profile_offset_ = 0;
    uint32_t profile_size_ = 0;
    // The live region, when the segment has one (validated; terms by pass).
    struct Live {
        uint32_t slots_offset = 0;  // from the segment's start
        uint32_t slot_count = 0, slot_size = 0;
        uint32_t used_offset = 0;   // LiveHeader::slots_used, from the segment's start
        uint32_t remainder_word = 0;  // index in the copied words
        std::vector<uint32_t> value_word, slot_word;  // per term; value_word indexes the copied words
        std::vector<uint8_t> pass;
        std::vector<uint64_t> weight;
        std::vector<uint8_t> word_is_float;  // per copied word: 0 none, 1 int, 2 float
        // Float folds differ from the snapshot's by rounding: the last value
        // read of each, so that a cumulative one never goes down.
        std::vector<double> last_float;
        std::vector<uint32_t> pass_begin;        // terms of pass p: [pass_begin[p], pass_begin[p + 1])
        std::vector<uint32_t> pass_words;        // distinct slot words of each pass, in pass order
        std::vector<uint32_t> pass_words_begin;  // as pass_begin, into pass_words
    };
    Live live_;

    struct Entry {
        uint32_t value_offset;  // bytes into the values region
        uint32_t words;
    };
    std::vector<Description> descs_;
    std::vector<Entry> entries_;
    std::vector<std::vector<double>> bounds_;  // per metric, empty for scalars
    std::unordered_map<std::string, size_t> index_;
};

}  // namespace gometrics
