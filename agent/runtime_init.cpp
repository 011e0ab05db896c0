// Brackets the static initialisers of the C++ runtime the agent carries
// (libstdc++ and libgcc, linked statically: see agent/meson.build), so that
// what they allocate is the agent's, not the program's. libstdc++'s
// exception emergency pool is one malloc of about 71 KiB.
//
// Compiled twice: with GOMETRICS_RUNTIME_INIT_ENTER, linked before the
// runtime's archive members; without, after them. The loader runs an
// object's constructors in link order, so the runtime's run in between,
// after gometrics_start.
#include "slots.h"

namespace gometrics::agent::detail {

// The calling thread's TLS word, from one constructor to the other.
#ifdef GOMETRICS_RUNTIME_INIT_ENTER
ThreadSlot* g_runtime_init_saved;

[[gnu::constructor]] static void enter_runtime_init() {
    g_runtime_init_saved = tls_slot;
    tls_slot = marker(kAgentThread);
}
#else
extern ThreadSlot* g_runtime_init_saved;

[[gnu::constructor]] static void leave_runtime_init() { restore_slot(g_runtime_init_saved); }
#endif

}  // namespace gometrics::agent::detail
