// `list`, `read` and `dump`: the metrics of one process.
#include <iostream>

#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "emitter.h"

namespace gometrics::cli {

namespace {

struct Target {
    std::optional<int> pid;
};

void add_pid_option(CLI::App* cmd, Target& t) {
    cmd->add_option("-p,--pid", t.pid, "Process to read (default: the only live instrumented one)")->transform(kDecimal);
}

void list(const Target& t, const std::string& format) {
    Reader r = open_or_fail(pick_pid(t.pid));
    if (format == "json") {
        nlohmann::ordered_json out = nlohmann::ordered_json::array();
        for (const auto& d : r.All())
            out.push_back({{"name", d.name}, {"kind", to_string(d.kind)}, {"cumulative", d.cumulative},
                           {"aggregation", to_string(d.aggregation)}, {"description", d.description}});
        std::cout << dump_json(out);
        return;
    }
    for (const auto& d : r.All())
        fmt::print("{:<44} {:<17} {:<10} {}\n", d.name, to_string(d.kind), d.cumulative ? "cumulative" : "gauge",
                   d.description);
}

int read(const Target& t, const std::vector<std::string>& names, bool as_json) {
    Reader r = open_or_fail(pick_pid(t.pid));
    std::vector<Sample> samples;
    for (const auto& n : names) samples.push_back({n, {}});
    if (auto st = r.Read(samples); !st) throw Failure(kExitError, st.error().message);

    int status = kExitOk;
    auto out = as_json ? json_emitter(std::cout) : text_emitter(std::cout);
    out->begin({r.pid(), 0});
    for (const auto& s : samples) {
        if (s.value.kind == ValueKind::Bad) {
            eprint("gometrics-cli: {}: not published by process {} (unknown or unsupported)", s.name,
                   r.pid());
            status = kExitUnsupported;
            continue;
        }
        const auto& all = r.All();
        const auto d = std::find_if(all.begin(), all.end(), [&](const auto& x) { return x.name == s.name; });
        out->metric(*d, s.value);
    }
    out->end();
    return status;
}

void dump(const Target& t, const std::string& format) {
    Reader r = open_or_fail(pick_pid(t.pid));
    auto snap = r.ReadAll();
    if (!snap) throw Failure(kExitError, snap.error().message);
    auto out = format == "json" ? json_emitter(std::cout) : text_emitter(std::cout);
    out->begin({r.pid(), snap->time_ns});
    for (size_t i = 0; i < r.All().size(); ++i) out->metric(r.All()[i], snap->values[i]);
    out->end();
}

}  // namespace

void add_metric_commands(CLI::App& app, int& status) {
    static Target t;
    static std::string list_format = "text", dump_format = "text";
    static std::vector<std::string> names;
    static bool read_json = false;

    auto* l = app.add_subcommand("list", "Describe every metric a process publishes: name, kind, cumulative, meaning");
    add_pid_option(l, t);
    l->add_option("--format", list_format, "text or json")->check(CLI::IsMember({"text", "json"}));
    l->callback([&status] {
        list(t, list_format);
        status = kExitOk;
    });

    auto* r = app.add_subcommand("read", "Print the current value of each named metric");
    add_pid_option(r, t);
    r->add_option("names", names, "Metric names, e.g. /gc/heap/allocs:bytes")->required();
    r->add_flag("--json", read_json, "Print dump's JSON format");
    r->callback([&status] { status = read(t, names, read_json); });

    auto* d = app.add_subcommand("dump", "Print every metric of a process");
    add_pid_option(d, t);
    d->add_option("--format", dump_format, "text or json")->check(CLI::IsMember({"text", "json"}));
    d->callback([&status] {
        dump(t, dump_format);
        status = kExitOk;
    });
}

}  // namespace gometrics::cli
