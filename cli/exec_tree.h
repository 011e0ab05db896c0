// `exec`: the processes of CMD's tree, found as their segments appear, read
// while they run and, once CMD has ended, given their final metrics from the
// best source (exit report, segment, last poll).
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>

#include "aggregate.h"
#include "reader.h"

namespace gometrics::cli {

struct Tracked {
    int pid = 0;
    std::string command;
    uint64_t ticks = 0;  // start time of the process, to tell a reused pid apart
    std::optional<Reader> reader;
    ino_t segment_inode = 0;
    std::optional<Metrics> last_poll;
    std::string source;  // where its final metrics came from: exit-report, running, segment, last-poll, none
    std::optional<Metrics> final;
};

class Tree {
public:
    // report_dir: where the processes write report.<pid>.json at exit.
    explicit Tree(std::string report_dir) : dir_(std::move(report_dir)) {}

    // A segment appeared for pid: kept when the process descends from us.
    void notice(int pid);
    // Reads every live tracked process (fresh).
    void poll();
    // After CMD ended: the final metrics of every process, best source first.
    void finish();

    const std::map<int, Tracked>& processes() const { return tracked_; }

private:
    void finish_one(Tracked& t);

    std::string dir_;
    std::map<int, Tracked> tracked_;
};

}  // namespace gometrics::cli
