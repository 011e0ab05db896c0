// The seqlock that makes one read of the values region one coherent batch.
//
// Protocol (after the kernel's include/linux/seqlock.h, adapted to memory
// shared between processes):
//
//   Writer: exactly one thread, the agent's publisher (or the exit path,
//   which first takes the publisher's role, see agent/publisher.cpp). It owns
//   the values region and SegmentHeader::seq.
//       s = seq                      (only the writer stores seq)
//       seq = s + 1   relaxed        odd: a write is under way
//       fence(release)               [W1] pairs with the reader's [R2]
//       values[i] = v  relaxed       word by word, atomic_ref<uint64_t>
//       seq = s + 2   release        [W2] pairs with the reader's [R1]
//       futex_wake(&seq)             readers waiting for a fresh snapshot
//
//   Reader: any process that mapped the segment; it never writes values.
//       for (tries) {
//           s1 = seq      acquire     [R1]; odd -> retry
//           copy values   relaxed     word by word into private memory
//           fence(acquire)            [R2]
//           s2 = seq      relaxed
//           if (s1 == s2) done: the copy is one snapshot
//       }
//   A writer that dies mid-write leaves seq odd forever: readers give up
//   after a bounded number of tries and report it, they never spin forever.
//   A writer preempted mid-write (more runnable threads than CPUs) is
//   alive: readers yield the CPU to it between bursts of spinning, or their
//   tries would run out in well under a millisecond.
//
// Values are copied with 8-byte relaxed atomic accesses, so a torn read is
// impossible per word and a torn batch is detected by the seq recheck; there
// is no data race in the C++ sense on either side.
#pragma once

#include <sched.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace gometrics::seqlock {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// Writer side. `seq` is SegmentHeader::seq in shared memory.
class Writer {
public:
    explicit Writer(uint32_t* seq) noexcept : seq_(seq) {}

    void begin() noexcept {
        std::atomic_ref<uint32_t> s(*seq_);
        s.store(s.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_release);  // [W1] pairs with [R2]
    }
    void end() noexcept {
        std::atomic_ref<uint32_t> s(*seq_);
        s.store(s.load(std::memory_order_relaxed) + 1, std::memory_order_release);  // [W2] pairs with [R1]
    }

private:
    uint32_t* seq_;
};

inline void store_word(uint64_t* dst, uint64_t v) noexcept {
    std::atomic_ref<uint64_t>(*dst).store(v, std::memory_order_relaxed);
}

// Reader side: copies `words` 8-byte words from shared `src` to private `dst`
// as one snapshot. Returns the (even) generation copied, or -1 when the
// writer never settled within `max_tries`.
inline int64_t read_consistent(const uint32_t* seq, const uint64_t* src, uint64_t* dst, size_t words,
                               int max_tries) noexcept {
    std::atomic_ref<uint32_t> s(*const_cast<uint32_t*>(seq));
    for (int i = 0; i < max_tries; ++i) {
        const uint32_t s1 = s.load(std::memory_order_acquire);  // [R1] pairs with [W2]
        if (s1 & 1u) {
            if (i % 64 == 63)
                sched_yield();
            else
                cpu_relax();
            continue;
        }
        for (size_t w = 0; w < words; ++w)
            dst[w] = std::atomic_ref<uint64_t>(*const_cast<uint64_t*>(src + w)).load(std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_acquire);  // [R2] pairs with [W1]
        if (s.load(std::memory_order_relaxed) == s1) return s1;
    }
    return -1;
}

}  // namespace gometrics::seqlock
