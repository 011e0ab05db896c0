// Sampled heap and contention profiles: which stacks allocate the bytes and
// which wait on locks.
//
// Heap: allocations are sampled by bytes, Poisson-style as Go's
// MemProfileRate does: each thread counts down an exponentially distributed
// number of bytes (mean GOMETRICS_PROFILE_RATE, default 512 KiB; 0 turns
// profiling off) and samples the allocation that crosses zero. A sample
// unwinds the stack (libgcc's unwinder, linked in), interns it in a bounded table
// (GOMETRICS_PROFILE_MAX_STACKS, default 1024: its copy in the segment is
// reserved up front, 312 bytes a stack) and remembers the object, so that its free
// moves it from in-use to freed. A sampled small block of glibc's moves to a
// larger chunk, which the free hook's inline path leaves to the slow path;
// there a small counting filter tells the unsampled apart in one byte load.
//
// Contention: each contended lock acquisition, with probability 1 in
// GOMETRICS_MUTEX_PROFILE_FRACTION (default 8, 0: off), is sampled with its
// stack and wait.
//
// All tables live in anonymous mappings the agent makes itself; the
// publisher copies the stack table into the segment's profile region.
#pragma once

#include <cstddef>
#include <cstdint>

#include "facts/agent_facts.h"
#include "slots.h"

#pragma GCC visibility push(hidden)

namespace gometrics::agent::profile {

namespace detail {
// Counts of sampled live objects by address: byte (p / 16) mod 2^18, so
// nearby blocks share a cache line of it and the test is a shift, a mask
// and a load. Static and zero (untouched pages cost nothing) until a heap
// sample is taken; a count saturates at 255 and then stays.
inline constexpr unsigned kFilterBits = 18;
extern uint8_t g_live_filter[size_t{1} << kFilterBits];

[[gnu::always_inline]] inline size_t filter_index(const void* p) noexcept {
    return (reinterpret_cast<uintptr_t>(p) >> 4) & ((size_t{1} << kFilterBits) - 1);
}
}  // namespace detail

// Cold paths, called by the hooks. Each thread schedules its heap samples
// so that an allocation of u usable bytes is sampled with probability
// 1 - exp(-u / rate), independently of the others: what Go's byte countdown
// gives (a Poisson process over allocated bytes). A small size (buckets.h)
// keeps the count at which its next sample falls, a geometric draw, so its
// hook only compares a counter it has just incremented; any other size
// counts bytes down, an exponential draw. The first time either is reached
// on a slot it is only drawn, not sampled. A lazy publisher that waits may
// make the hooks call out earlier (to poll): those calls sample nothing
// and leave the schedule as it was.
// The allocation p reached the call-out count of its small size. Returns
// the block to hand out: a sampled glibc block moves out of the small sizes
// (profile.cpp), so the free hook's inline path never meets a sample.
[[gnu::noinline, gnu::cold]] void* small_reached(ThreadSlot* s, void* p, size_t usable) noexcept;
// The byte countdown of the other sizes (to its call-out) crossed zero at p.
[[gnu::noinline, gnu::cold]] void countdown_crossed(ThreadSlot* s, void* p, size_t usable) noexcept;
// The filter says p may be a sampled object: if it is, record its free and
// return the size its allocation counted (a moved block's chunk is larger);
// else 0.
[[gnu::noinline, gnu::cold]] size_t forget(void* p) noexcept;
// A second attach (attach.cpp), whose agent never saw the frees made while
// it was detached: every sampled object is forgotten, and the stacks' counts
// start from zero (profiles sample from the attach).
void start_again() noexcept;

// The program is installing a seccomp filter (sys::confined is set): waits,
// 200 ms at most, for stacks other threads are unwinding, whose probes of
// memory (mincore) the filter may kill.
void before_confinement() noexcept;
// The same size without forgetting p (realloc, before it knows the outcome).
[[gnu::noinline, gnu::cold]] size_t sampled_size(const void* p) noexcept;
// Writes record r alone (and the header's counts) into the region: how a
// process without a publisher thread keeps its profile fresh, one changed
// record at a time. The caller is the region's single writer, and has
// reserved the region's records (ipc::SegmentWriter::reserve_profile).
void publish_record(void* region, uint32_t r) noexcept;
// Whether the stack table holds a record: the region's records need their
// pages only from then on.
bool any_records() noexcept;
// Told of every changed record (set by the publisher; null: nobody listens).
extern void (*g_record_changed)(uint32_t record) noexcept;

// A contended acquisition that waited wait_ns: maybe sample it.
[[gnu::noinline, gnu::cold]] void sample_contention(uint64_t wait_ns) noexcept;

// Test before a free outside the inline path: may p be a sampled object?
[[gnu::always_inline]] inline bool maybe_sampled(const void* p) noexcept {
    return detail::g_live_filter[detail::filter_index(p)] != 0;
}

// Publisher side.
size_t region_bytes() noexcept;  // size of the segment's profile region, 0 when off
// Copies the stack table into the region (under the region's seqlock):
// the header alone, with no stack, unless `records` (their pages reserved).
void publish(void* region, bool records) noexcept;
// mapped_bytes(): facts/agent_facts.h.

// fork() copies the unwinder's state as it is, in the middle of another
// thread's stack (libgcc's keeps a lock for frames registered at run time:
// none are, in the agent's copy, but a child must never wait on one). So
// before a fork (atfork's prepare) new stacks are held back and those under
// way waited for, 100 ms at most; after it, in the parent, stacks resume.
void before_fork() noexcept;
void after_fork_parent() noexcept;
// In a forked child: a configuration another thread had under way will
// never finish here; start it again from scratch. A stack still under way
// at the fork leaves the child's samples without stacks.
void after_fork_child() noexcept;

}  // namespace gometrics::agent::profile

#pragma GCC visibility pop
