// The agent's process-wide settings, apart from the constructor that sets
// them, so collectors and tools can link without the hooks.
#include "agent.h"
#include "clocks.h"
#include "facts/agent_facts.h"
#include "real.h"
#include "slots.h"


#include <cstdlib>

#include "config.h"

namespace gometrics::agent {

namespace detail {
constinit Config g_config{};
constinit bool g_interposed = true;
constinit uint64_t g_start_time_ns = 0;
constinit std::atomic<uint64_t> g_publisher_bytes{0};
constinit std::atomic<bool> g_crashing{false};
constinit std::atomic<uint64_t> g_attach_time_ns{0};
constinit std::atomic<uint64_t> g_attach_heap_baseline{0};
}  // namespace detail

namespace {
constinit std::atomic<int> g_config_state{0};  // 0 unparsed, 1 parsing, 2 ready
}  // namespace

const Config& config() noexcept {
    if (g_config_state.load(std::memory_order_acquire) != 2) [[unlikely]] {
        int expected = 0;
        if (g_config_state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
            parse_config(detail::g_config, [](const char* name) -> const char* { return getenv(name); });
            g_config_state.store(2, std::memory_order_release);
        } else {
            while (g_config_state.load(std::memory_order_acquire) != 2) sys::pause_ns(sys::kWaitNs);
        }
    }
    return detail::g_config;
}
bool malloc_interposed() noexcept { return detail::g_interposed; }
uint64_t start_time_ns() noexcept { return detail::g_start_time_ns; }
uint64_t attach_time_ns() noexcept { return detail::g_attach_time_ns.load(std::memory_order_relaxed); }
uint64_t attach_heap_baseline() noexcept { return detail::g_attach_heap_baseline.load(std::memory_order_relaxed); }
bool crashing() noexcept { return detail::g_crashing.load(std::memory_order_relaxed); }
uint64_t publisher_bytes() noexcept { return detail::g_publisher_bytes.load(std::memory_order_relaxed); }
uint64_t own_bytes() noexcept { return slot_bytes() + publisher_bytes() + detail::kArenaSize; }

}  // namespace gometrics::agent
