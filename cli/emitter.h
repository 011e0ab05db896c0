// One walk over a process's metrics, many outputs (jemalloc's emitter idea):
// every command that prints metrics feeds an Emitter, and the format is only
// a choice of Emitter.
#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "metrics.h"

namespace gometrics::cli {

struct ProcessHeader {
    int pid = 0;
    uint64_t snapshot_time_ns = 0;
};

class Emitter {
public:
    virtual ~Emitter() = default;
    virtual void begin(const ProcessHeader&) {}
    virtual void metric(const Description& d, const Value& v) = 0;
    virtual void end() {}
};

// "NAME VALUE" lines; a histogram as its count and p50/p90/p99.
std::unique_ptr<Emitter> text_emitter(std::ostream& out);
// dump's JSON: {"pid": N, "metrics": [{"name","kind","cumulative","value"}]}.
std::unique_ptr<Emitter> json_emitter(std::ostream& out);

// A JSON document as the CLI prints and writes it (indented, a newline
// after). Bytes that are not UTF-8 (names from segments, a command's
// arguments) are replaced: JSON cannot carry them.
std::string dump_json(const nlohmann::ordered_json& doc);

// The JSON forms, shared by dump, exec's report, check and diff.
nlohmann::ordered_json value_to_json(const Value& v);
// Parses a value written by value_to_json (or the agent's report); kind Bad on mismatch.
Value value_from_json(const std::string& kind, const nlohmann::ordered_json& j);
// One line for a value, as `read` and `dump --format text` print it.
std::string value_text(const Description& d, const Value& v);

}  // namespace gometrics::cli
