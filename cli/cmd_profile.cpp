// `profile heap|allocs|mutex`: its options. The work is done by the profile
// module (module_profile.cpp), loaded when the command runs.
#include "commands.h"
#include "common.h"
#include "modules.h"

namespace gometrics::cli {

namespace {

int run_profile(const ProfileArgs& args) {
    return call_module(kProfileModule, "gometrics_cli_profile_run", args);
}

}  // namespace

void write_profile_from_report(const std::string& kind, const std::string& report, const std::string& output,
                               bool quiet) {
    ProfileArgs a;
    a.quiet = quiet;
    a.kind = kind;
    a.from_report = report;
    a.output = output;
    run_profile(a);
}

void add_profile_commands(CLI::App& app, int& status) {
    static ProfileArgs o;
    auto* p = app.add_subcommand(
        "profile", "Write a heap, allocs or mutex profile in pprof format (read it with `go tool pprof` or `pprof`)");
    p->add_option("kind", o.kind, "heap (in use; allocations too), allocs (allocated), mutex (lock contention)")
        ->required()
        ->check(CLI::IsMember({"heap", "allocs", "mutex"}));
    p->add_option("-p,--pid", o.pid, "Process to profile (default: the only live instrumented one)")->transform(kDecimal);
    p->add_option("-o,--output", o.output,
                  "Output file, - for stdout (default: KIND.PID.pb.gz in the current directory; text: stdout)")
        ->transform(kValue);
    p->add_option("--format", o.format, "pprof (gzip'd profile.proto) or text (the top stacks, symbolized)")
        ->check(CLI::IsMember({"pprof", "text"}));
    p->add_option("--top", o.top, "Stacks shown by --format text (1 or more)")->transform(kDecimal)->check(CLI::Range(1, 1000000));
    p->add_option("--from-report", o.from_report,
                  "Convert the GOMETRICS_PROFILE_REPORT file an exited process wrote instead of reading a live one")
        ->transform(kValue);
    p->add_flag("!--no-symbolize", o.symbolize,
                "Keep addresses only (pprof symbolizes them from the binaries and their build IDs)");
    p->callback([&status] { status = run_profile(o); });
}

}  // namespace gometrics::cli
