// `serve`: its options. The server is the serve module (module_serve.cpp),
// loaded when the command runs.
#include "commands.h"
#include "common.h"
#include "modules.h"

namespace gometrics::cli {

void add_serve_command(CLI::App& app, int& status) {
    static ServeArgs args;
    auto* s = app.add_subcommand(
        "serve",
        "Serve every live instrumented process over HTTP: /metrics (Prometheus), /debug/pprof/ (profiles, as Go's "
        "net/http/pprof), /api/v1/processes (JSON), /");
    s->add_option("--listen", args.listen, "HOST:PORT to listen on (port 0: any free port)")->capture_default_str();
    s->add_option("--namespace", args.ns, "Prefix of the Prometheus names, in place of client_golang's \"go\"")
        ->capture_default_str();
    s->add_option("-p,--pid", args.pids, "Export only these processes (repeatable; default: every one we may read)")
        ->transform(kDecimal)
        ->check(CLI::Range(1, 1 << 30));
    s->add_option("--fresh-timeout-ms", args.fresh_timeout_ms,
                  "How long a request waits, in all, for fresh snapshots (0: take the latest published)")
        ->capture_default_str()
        ->transform(kDecimal)
        ->check(CLI::Range(0, 10000));
    s->add_option("--write-timeout", args.write_timeout_s,
                  "Longest a /debug/pprof response may take, as Go's WriteTimeout: seconds=N must stay below it")
        ->capture_default_str()
        ->check(CLI::Range(1, 3600));
    s->add_option("--otlp", args.otlp_url,
                  "Also push every process's metrics as OTLP/HTTP protobuf to URL (default: "
                  "OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT, else http://localhost:4318/v1/metrics)")
        ->expected(0, 1);
    s->add_option("--otlp-interval", args.otlp_interval_s,
                  "Seconds between OTLP pushes (default: OTEL_METRIC_EXPORT_INTERVAL, else 60)")
        ->check(CLI::Range(1, 86400));
    s->callback([&status, s] {
        args.otlp = s->count("--otlp") > 0;
        status = call_module(kServeModule, "gometrics_cli_serve_run", args);
    });
}

}  // namespace gometrics::cli
