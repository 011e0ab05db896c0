// `exec`: what CMD's tree did, on stderr and as the report's metrics.
#pragma once

#include <sys/resource.h>

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "exec_run.h"
#include "exec_tree.h"
#include "report_file.h"

namespace gometrics::cli {

inline constexpr std::string_view kLivePeak = "/gc/heap/live-peak:bytes";
inline constexpr std::string_view kRssPeak = "/process/memory/rss-peak:bytes";

// The summary lines: how CMD ended, allocations, live heap, threads, mutex
// wait, CPU of the tree (ru: RUSAGE_CHILDREN) and peak RSS.
void print_summary(const std::vector<std::string>& command, const Ended& e, const Tree& tree, const Report& agg,
                   const rusage& ru);

// The metrics array of a report (dump's JSON shape).
nlohmann::ordered_json metrics_json(const std::vector<Description>& descs, const std::vector<Value>& values);

}  // namespace gometrics::cli
