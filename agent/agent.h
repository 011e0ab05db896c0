// The agent's lifecycle and configuration, as seen by collectors.
#pragma once

#include <atomic>
#include <cstdint>

namespace gometrics::agent {

// The GOMETRICS_* environment, parsed once from the table in config.cpp
// (which documents each variable) at the first call of config().
struct Config {
    uint32_t interval_ms;     // GOMETRICS_INTERVAL_MS: publisher refresh period
    const char* report_path;  // GOMETRICS_REPORT: final snapshot as JSON at exit ("%p" -> pid), or null
    // GOMETRICS_PUBLISHER=thread, or trace lines being written (set by the
    // constructor once the trace file is open): the publisher thread starts
    // at once; otherwise only once the program has a thread of its own, and
    // until then the program's thread takes a snapshot when a reader asks
    // (layout::kStatePublisherLazy).
    bool eager_publisher;
    const char* profile_report_path;  // GOMETRICS_PROFILE_REPORT: sampled stacks as JSON at exit ("%p" -> pid), or null
    const char* trace;                // GOMETRICS_TRACE: "1" (stderr) or a file ("%p" -> pid), or null: no trace
    uint64_t profile_rate;            // GOMETRICS_PROFILE_RATE: mean bytes between heap samples, 0: off
    uint64_t mutex_fraction;          // GOMETRICS_MUTEX_PROFILE_FRACTION: one contention in this many, 0: off
    uint32_t profile_max_stacks;      // GOMETRICS_PROFILE_MAX_STACKS
    bool jemalloc;                    // GOMETRICS_ALLOCATOR=jemalloc
};

// Parsed at the first call, from whichever thread comes first: the hooks
// (profiling, the allocator switch) may need it before the constructor runs.
const Config& config() noexcept;

// False when the program's malloc is not ours (a statically linked
// allocator): heap metrics are then left out instead of reading zero.
bool malloc_interposed() noexcept;

uint64_t start_time_ns() noexcept;

// The program is dying of a crash signal and the handler computes the last
// snapshot, maybe inside a malloc that holds the allocator's lock: what
// would take a lock keeps its last figures.
bool crashing() noexcept;  // CLOCK_REALTIME when the agent started in this process

// Bytes the publisher maps for itself (state, values buffer, segment): part
// of /memory/classes/other. Set by the publisher, read by collectors.
uint64_t publisher_bytes() noexcept;

namespace detail {
// Set once by the constructor (agent.cpp) before the publisher starts.
extern Config g_config;
extern bool g_interposed;
extern uint64_t g_start_time_ns;
extern std::atomic<uint64_t> g_publisher_bytes;
extern std::atomic<bool> g_crashing;
extern std::atomic<uint64_t> g_attach_time_ns;  // attach_time_ns() (facts/agent_facts.h), set by attach.cpp
extern std::atomic<uint64_t> g_attach_heap_baseline;  // attach_heap_baseline(), set by attach.cpp
}  // namespace detail

}  // namespace gometrics::agent
