// Where a large zero-initialised static buffer goes: the x86-64 linker
// places .lbss after .bss, so the small variables a short process writes
// share a few pages instead of lying one per page between the buffers.
// Only for zero-initialised objects (the compiler refuses others there).
// Not under AddressSanitizer, which leaves objects in sections of their
// own unguarded.
#pragma once

#if defined(__x86_64__) && defined(__ELF__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define GOMETRICS_BUFFER [[gnu::section(".lbss.gometrics")]]
#else
#define GOMETRICS_BUFFER
#endif
