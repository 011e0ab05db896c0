// The cpu family's pure arithmetic, apart from its sources so it can be
// unit tested: Go's /cpu/classes sum rule over kernel CPU times.
#pragma once

#include <cstdint>
#include <optional>

namespace gometrics::collect::cpu {

// CPU times are published in quanta of 2^-20 s (about 0.95 us): every
// leaf is then a double that holds its value exactly, and so does any sum
// of them, in any order, for 272 years of CPU time. Readers checking
// total == user + system + idle get exact equality.
inline constexpr double kQuantumSeconds = 1.0 / double(1u << 20);
uint64_t quanta(uint64_t ns) noexcept;

// /cpu/classes/* as Go defines them: `total` is the CPU capacity (usable
// CPUs integrated over wall time), `idle` what the process left unused.
// Every leaf only grows: at each step idle grows by the capacity of the
// step minus what was used in it, clamped at 0, so a burst the kernel
// accounts late (or a capacity that shrank) never makes idle go down;
// total is the sum of the leaves, so the sum rule holds exactly and total
// never falls below the capacity integrated so far.
class Classes {
public:
    // The first step covers the process's life before the agent looked.
    void step(uint64_t user_ns, uint64_t system_ns, uint64_t capacity_ns) noexcept;
    uint64_t user_q() const noexcept { return user_q_; }
    uint64_t system_q() const noexcept { return system_q_; }
    uint64_t idle_q() const noexcept { return idle_q_; }
    uint64_t total_q() const noexcept { return user_q_ + system_q_ + idle_q_; }

private:
    uint64_t user_q_ = 0, system_q_ = 0, idle_q_ = 0;
};

// Go 1.25's default GOMAXPROCS on Linux: the CPUs in the affinity mask,
// lowered to the leaf cgroup v2's cpu.max limit rounded up (at least 2).
uint32_t gomaxprocs(uint32_t affinity_cpus, std::optional<double> cgroup_limit_cpus) noexcept;

}  // namespace gometrics::collect::cpu
