// The profile module: `profile heap|allocs|mutex` (options in cmd_profile.cpp)
// writes a pprof profile of a live process (from its segment) or of one that
// has exited (from its GOMETRICS_PROFILE_REPORT).
//
// Profiles are written pre-symbolized (functions, files, lines), with the
// mappings and build IDs kept: `go tool pprof` symbolizes C and C++ poorly
// (no shared libraries, no anonymous-namespace functions), and the
// binaries may be gone or rebuilt by the time somebody reads the profile.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "profile_build.h"
#include "common.h"
#include "files.h"
#include "modules.h"

namespace gometrics::cli {

namespace {

using Options = ProfileArgs;

template <class T>
T ok_or_fail(Result<T> r) {
    if (!r) throw Failure(kExitError, r.error().message);
    return std::move(*r);
}

struct Collected {
    Profile raw;
    ProfileSource source;
};

Collected from_process(int pid) {
    Reader reader = open_or_fail(pid);
    // Samples taken up to now, not up to the last periodic snapshot: wait
    // longer than a metrics read does for the publisher on a busy machine.
    ReadOptions fresh;
    fresh.fresh_timeout_ms = 2000;
    auto raw = reader.ReadProfile(fresh);
    if (!raw) throw Failure(kExitError, raw.error().message);
    Collected c{std::move(*raw), {}};
    c.source.pid = pid;
    c.source.start_time_ns = reader.start_time_ns();
    c.source.mappings = ok_or_fail(pprof::read_mappings(pid));
    return c;
}

// A report is a regular file the agent wrote (/dev/zero or a FIFO would be
// read for ever), and no larger than its tables can make one.
constexpr off_t kMaxReportBytes = off_t{1} << 30;

Collected from_report(const std::string& path) {
    const int fd = sys::open_regular(path.c_str(), O_RDONLY);
    if (fd < 0) throw Failure(kExitError, fmt::format("cannot read {}: {}", path, sys::open_error(errno)));
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size > kMaxReportBytes) {
        ::close(fd);
        throw Failure(kExitError, fmt::format("{}: not a profile report (larger than 1 GiB)", path));
    }
    std::string text(static_cast<size_t>(st.st_size), '\0');
    size_t got = 0;
    while (got < text.size()) {
        const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<size_t>(n);
    }
    ::close(fd);
    text.resize(got);
    auto report = parse_profile_report(text);
    if (!report) throw Failure(kExitError, fmt::format("{}: {}", path, report.error().message));
    return {std::move(report->profile), std::move(report->source)};
}

// Symbols while the files are those the process ran: the live process's
// own view, or the recorded mappings' files. Without symbols the profile is
// still valid (pprof symbolizes from the files), so failure only warns.
void add_symbols(pprof::Profile& profile, const Options& o, int pid) {
    auto symbolizer = o.from_report.empty() ? pprof::Symbolizer::for_pid(pid)
                                            : pprof::Symbolizer::for_mappings(profile.mappings);
    if (!symbolizer) {
        eprint("gometrics-cli: warning: profile left unsymbolized: {}", symbolizer.error().message);
        return;
    }
    pprof::symbolize(profile, **symbolizer);
}

void write_bytes(const std::string& bytes, const std::string& path) {
    if (path == "-") {
        std::cout.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        std::cout.flush();
        if (!std::cout) throw Failure(kExitError, "cannot write to stdout");
        return;
    }
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) throw Failure(kExitError, fmt::format("cannot write {}: {}", path, std::strerror(errno)));
}

int run(const Options& o) {
    const auto parsed_kind = parse_profile_kind(o.kind);
    if (!parsed_kind) throw Failure(kExitUsage, fmt::format("no profile kind \"{}\": heap, allocs or mutex", o.kind));
    const ProfileKind kind = *parsed_kind;
    if (!o.from_report.empty() && o.pid)
        throw Failure(kExitUsage, "--pid and --from-report are exclusive: a report names its process");
    Collected c = o.from_report.empty() ? from_process(pick_pid(o.pid)) : from_report(o.from_report);
    pprof::Profile profile = ok_or_fail(build_profile(c.raw, kind, c.source));
    if (o.symbolize) add_symbols(profile, o, c.source.pid);

    if (o.format == "text") {
        const std::string type =
            profile.default_sample_type.empty() ? profile.sample_types.back().type : profile.default_sample_type;
        std::string text = ok_or_fail(pprof::render_text(profile, *pprof::find_sample_type(profile, type), o.top));
        write_bytes(text, o.output.empty() ? "-" : o.output);
        return kExitOk;
    }
    const std::string path =
        o.output.empty() ? fmt::format("{}.{}.pb.gz", profile_kind_name(kind), c.source.pid) : o.output;
    const std::string message = ok_or_fail(pprof::encode(profile));
    write_bytes(ok_or_fail(pprof::detail::gzip(message)), path);
    if (path != "-" && !o.quiet)
        eprint("{} profile of process {}: {} stacks, written to {}", profile_kind_name(kind),
               c.source.pid, profile.samples.size(), path);
    return kExitOk;
}

}  // namespace

}  // namespace gometrics::cli

extern "C" {

const char gometrics_cli_module_version[] = GOMETRICS_VERSION;

int gometrics_cli_profile_run(const gometrics::cli::ProfileArgs& args, gometrics::cli::ModuleFailure& failure) {
    return gometrics::cli::run_in_module(failure, [&] { return gometrics::cli::run(args); });
}

}
