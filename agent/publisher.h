// The publisher: owns the segment and the values buffer, computes snapshots
// from the catalogue and publishes them, on its own thread and at exit.
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace gometrics::agent {

// Creates the segment and starts the publisher thread. Counting works
// whether or not this succeeds; a failure is said once on stderr.
void publisher_start() noexcept;
// The same in two steps, for the constructor, which moves its thread's slot
// into the segment in between: create the segment, then publish the first
// snapshot and start the thread if it is to start. False when there is no
// segment; `attaching`: then nothing is to be counted either (said so).
bool publisher_create(bool attaching = false) noexcept;
// program_has_threads: the constructor found threads of the program's own.
void publisher_begin(bool program_has_threads) noexcept;

// The lazy publisher (layout::kStatePublisherLazy): in a single-threaded
// program the thread starts only when the program goes multi-threaded
// anyway or a reader asks for a fresh snapshot. Called from cold paths of
// the program's threads (every few KiB allocated, and before its first
// pthread_create); cheap when there is nothing to do.
void publisher_poll() noexcept;
void publisher_start_thread_if_lazy() noexcept;
bool publisher_pending() noexcept;  // lazy and not started yet

// A profile record changed (profile.cpp, in its cold paths): without a
// publisher thread, the program's thread writes it into the segment now.
void publisher_profile_changed(uint32_t record) noexcept;

// At exit: stops the thread, publishes a final snapshot, writes the report
// (GOMETRICS_REPORT) and removes the segment.
void publisher_shutdown() noexcept;

// In the crash handler (crash.cpp), once: the final snapshot, report and
// trace line, without allocating and without waiting for long on anything.
void publisher_crash() noexcept;

// Before the program confines itself with seccomp (the prctl and syscall
// hooks), while the agent may still make any call: reserves what it would
// need a call for later (the profile's pages).
void publisher_before_confinement() noexcept;
// Then, after sys::set_confined: waits, briefly, for a snapshot begun
// before, since the filter may forbid what it still has to do.
void publisher_wait_for_snapshot() noexcept;
// Before root drops to `uid` for good (hooks_privilege.cpp): the segment,
// and the report file when the program is single-threaded, become that
// user's, who can then remove and write them at exit; 0 gives them back
// after a refused call. Whether there was a segment to give.
bool publisher_before_uid_drop(uid_t uid) noexcept;

// In a forked child (atfork handler, trivial): forget the parent's segment
// and thread; publisher_start() runs again at the child's first counted call.
void publisher_forget_after_fork() noexcept;

// An attached agent (attach.cpp). The segment says it was attached (and
// its start time is the attach's).
void publisher_mark_attached() noexcept;
// Detach: stops the thread and marks the segment exited (its last snapshot
// stands; the CLI removes it), then closes the descriptors the agent kept;
// the mappings stay (threads may still count in their slots there).
void publisher_detach() noexcept;
// Before publisher_create() again after a detach: false when the publisher
// thread of the last attach never stopped (there must never be two writers).
bool publisher_rearm() noexcept;

}  // namespace gometrics::agent
