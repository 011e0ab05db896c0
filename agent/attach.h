// The agent loaded into a process that was already running (`gometrics-cli
// attach PID`, which makes one of its threads call dlopen): nothing binds to
// the agent's hooks then, so other objects' GOT entries are pointed at them
// (got.h), and pointed back at detach. See attach.cpp.
#pragma once

#pragma GCC visibility push(hidden)

namespace gometrics::agent::attach {

// The constructor's question: did the agent come after libc, by dlopen,
// rather than by LD_PRELOAD or the program's own link?
bool loaded_late() noexcept;

// Attached start-up, in the constructor, under its Guard, before the segment
// exists: finds the agent's own hooks and the functions they redirect from.
// Returns whether the malloc family can be taken over (false: the program
// has an allocator of its own, which we leave alone).
bool prepare() noexcept;

// After the segment exists: redirect. The process counts from here.
void begin() noexcept;

// Why the agent must stay out of this process now, or nullptr (said once on
// stderr; gometrics_attach_refusal gives it to the CLI).
const char* refusal() noexcept;

// Attached now (the GOT entries point at the agent).
bool active() noexcept;

// After a dlopen by path (attach.cpp's trampoline): redirects what it loaded.
void rescan_from_dlopen() noexcept;

// The publisher thread, each interval while attached: objects libc loaded
// by itself since (NSS modules, iconv converters) are redirected then, at
// the latest.
void rescan_on_tick() noexcept;

// Detached: the destructor has nothing left to publish.
bool detached() noexcept;

// In a forked child: a scan another thread had under way never finishes
// there, and must not keep the child's thread waiting for it.
void after_fork_child() noexcept;

}  // namespace gometrics::agent::attach

#pragma GCC visibility pop

// Called by `gometrics-cli attach` (a second attach, the agent being loaded
// already) and `gometrics-cli detach`, in a thread of the process it stopped.
// 1: done; 0: nothing to do (already attached, or not attached); -1: refused
// (the agent was preloaded, or its publisher did not stop); -2 (attach): it
// stays out, gometrics_attach_refusal says why, or there is no segment.
extern "C" [[gnu::visibility("default")]] int gometrics_attach() noexcept;
extern "C" [[gnu::visibility("default")]] int gometrics_detach() noexcept;
// Why the last attach stayed out (a static string), or nullptr.
extern "C" [[gnu::visibility("default")]] const char* gometrics_attach_refusal() noexcept;
