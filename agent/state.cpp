// The agent's process-wide settings, apart from the constructor that sets
// them, so collectors and tools can link without the hooks.
#include "agent.h"
#include "facts/agent_facts.h"
#include "real.h"
#include "slots.h"

namespace gometrics::agent {

namespace detail {
constinit Config g_config{1000, nullptr, false, nullptr};
constinit bool g_interposed = true;
constinit uint64_t g_start_time_ns = 0;
constinit std::atomic<uint64_t> g_publisher_bytes{0};
constinit std::atomic<bool> g_crashing{false};
}  // namespace detail

const Config& config() noexcept { return detail::g_config; }
bool malloc_interposed() noexcept { return detail::g_interposed; }
uint64_t start_time_ns() noexcept { return detail::g_start_time_ns; }
bool crashing() noexcept { return detail::g_crashing.load(std::memory_order_relaxed); }
uint64_t publisher_bytes() noexcept { return detail::g_publisher_bytes.load(std::memory_order_relaxed); }
uint64_t own_bytes() noexcept { return slot_bytes() + publisher_bytes() + detail::kArenaSize; }

}  // namespace gometrics::agent
