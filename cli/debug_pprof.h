// What `serve` answers under /debug/pprof/, the paths and conventions of Go's
// net/http/pprof, so that `go tool pprof http://HOST:PORT/debug/pprof/heap`,
// Parca and Pyroscope (pull mode) read native heap, allocs and mutex
// profiles of any instrumented process. No HTTP here: cmd_serve.cpp routes.
//
//   /debug/pprof/                   HTML index of the profiles and processes
//   /debug/pprof/heap|allocs|mutex  gzip'd profile.proto, as a download
//       ?pid=P       the process (implicit when serve watches exactly one)
//       ?debug=1     the heaviest stacks as text instead
//       ?seconds=N   the difference between two profiles N seconds apart
//
// Errors are one line of text/plain with X-Go-Pprof set, which makes
// `go tool pprof` print the line rather than a parse failure.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "pprof.h"

namespace gometrics::cli::debug_pprof {

struct Reply {
    int status = 200;
    std::string content_type;
    std::string content_disposition;  // empty: no such header
    bool go_pprof_error = false;      // send "X-Go-Pprof: 1"
    std::string body;
};

struct Options {
    std::vector<int> pids;  // serve's --pid list; exactly one makes ?pid= optional
    int fresh_timeout_ms = 50;
    // serve's write timeout: seconds=N must stay below it (Go's handler
    // refuses a delta that would outlast the server's WriteTimeout).
    int write_timeout_s = 60;
    bool symbolize = true;
    // Delta profiles waiting at once; each holds a server thread for N s.
    int max_waiting = 4;
};

// Query parameters as the HTTP layer parsed them (httplib::Params).
using Params = std::multimap<std::string, std::string>;

// Waits `d`; false when serve is stopping and the wait was cut short.
using Sleep = std::function<bool(std::chrono::seconds d)>;

class Handler {
public:
    Handler(Options options, Sleep sleep);

    // /debug/pprof/: the profiles, what they mean, and a link per process.
    Reply index(const Params& params);
    // /debug/pprof/NAME. Thread-safe; a delta holds no lock while it waits.
    Reply profile(std::string_view name, const Params& params);

private:
    // Symbolizes from the frames this process's earlier fetches resolved,
    // building a symbolizer only for addresses not seen before. Building one
    // (libdwfl reading every mapped ELF file) is about 90% of a first fetch,
    // ~45 ms for a small C program, and keeping it would cost ~12 MiB per
    // process; the frames cost a few hundred bytes per address. Forgotten
    // when the process is another (pid reused) or maps other files (dlopen).
    void symbolize(pprof::Profile& profile, int pid, uint64_t start_time_ns);

    struct Resolved {
        uint64_t start_time_ns = 0;
        std::vector<std::string> files;  // the mapped files the frames were resolved in
        std::map<uint64_t, std::vector<pprof::Frame>> frames;  // by stack address; empty: unknown there
    };

    Options options_;
    Sleep sleep_;
    std::mutex mu_;    // guards waiting_
    int waiting_ = 0;  // delta profiles in their wait
    std::mutex symbols_mu_;  // guards resolved_, and serialises symbolizing (libdwfl is not thread-safe)
    std::map<int, Resolved> resolved_;  // by pid
};

// p1 minus p0, stack by stack (samples with the same stack summed first),
// as Go computes its delta profiles; stacks whose values are all zero are
// left out. Time, period and mappings are p1's; the duration runs from p0.
// Both must have the same sample types (they come from the same process).
pprof::Profile delta(const pprof::Profile& p0, const pprof::Profile& p1);

}  // namespace gometrics::cli::debug_pprof
