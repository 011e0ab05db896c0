// A file mapped by a reader and shrunk under it by its owner: a load from
// the pages past its new end raises SIGBUS (BUS_ADRERR), which would kill
// the reader. The guard stands a page of zeros in for each such page and
// lets the load go on; the reader then asks whether a fault struck its
// range, and reports the file as truncated.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gometrics::sys {

// Installs the SIGBUS handler, once: only a program of ours does (the CLI),
// never the reader library on its own, whose users keep their signals. It
// acts on every BUS_ADRERR fault, in the reader's segments and in files the
// program maps but does not own (as libdw does); any other SIGBUS goes to
// the disposition that was there before.
void install_shrink_guard() noexcept;

// A count of the faults stood in for so far; faulted_since() says whether
// one struck [start, start + size) after the count read `since`.
uint64_t shrink_faults() noexcept;
bool faulted_since(uint64_t since, const void* start, size_t size) noexcept;

}  // namespace gometrics::sys
