// What a seccomp filter would do to a system call, read from its classic
// BPF program (as PTRACE_SECCOMP_GET_FILTER returns it): `attach` refuses a
// process whose filter would kill it at a call the agent makes.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <optional>
#include <span>

namespace gometrics::cli {

// The action (SECCOMP_RET_KILL_PROCESS, ..._ERRNO | errno, ...) that matters
// most among those `filter` can return for system call `nr` of an x86-64
// process, over every value of its arguments and instruction pointer (a
// jump that depends on them is followed both ways): a fatal one (is_fatal)
// if any, else the kernel's most severe. nullopt for a program the kernel
// would not have loaded, or one with too many paths to follow.
std::optional<uint32_t> worst_action(std::span<const sock_filter> filter, uint32_t nr);

// Whether action `a` overrides `b` when filters disagree (the kernel runs
// every filter and keeps the most severe answer).
bool more_severe(uint32_t a, uint32_t b);

// Whether the action ends the thread or the process, hands the program a
// SIGSYS, or waits on a supervisor that may never answer: what an attach
// must never provoke. An errno or a tracer's answer only makes the agent's
// call fail, which it handles.
bool is_fatal(uint32_t action);

// Whether the call goes through as if there were no filter (ALLOW, LOG).
bool may_pass(uint32_t action);

// "KILL_PROCESS", "ERRNO", ...
const char* action_name(uint32_t action);

}  // namespace gometrics::cli
