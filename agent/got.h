// Redirecting other objects' GOT entries to the agent, for an agent that
// arrived by dlopen into a running process (attach.cpp), and putting them
// back. x86-64 ELF only.
#pragma once

#include <cstddef>
#include <cstdint>

#pragma GCC visibility push(hidden)

namespace gometrics::agent::got {

// One function the agent takes over: calls of `name` from other objects go
// to `to`; `fallback` is what a restored entry holds when its original value
// was not recorded (the function the symbol binds to).
// in_libc: libc's own entries too (its strdup, getline or asprintf call
// malloc through them, and the program frees what they return).
struct Redirect {
    const char* name;
    void* to;
    void* fallback;
    bool in_libc = false;
};

// Points every JUMP_SLOT and GLOB_DAT entry of an undefined symbol named in
// `table`, in every loaded object but the agent (self_base: its load
// address) and the dynamic loader, at the table's function (in libc, the
// entries of its own definitions, for the in_libc rows only); records
// the value each had. Objects the loader has not finished relocating are
// left for a later call. Returns false when one was left that way. Not
// reentrant: the caller serialises. Never allocates.
bool redirect(const Redirect* table, size_t n, uintptr_t self_base) noexcept;

// Every entry that still points at one of the table's functions gets its
// recorded value back (or the fallback); the records are forgotten.
void restore(const Redirect* table, size_t n, uintptr_t self_base) noexcept;

// Entries redirected now (for tests and the trace).
size_t redirected() noexcept;

}  // namespace gometrics::agent::got

#pragma GCC visibility pop
