// serve's /debug/pprof/ endpoints; see debug_pprof.h.
#include "debug_pprof.h"

#include <malloc.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "profile_build.h"
#include "serve.h"
#include "reader.h"

namespace gometrics::cli::debug_pprof {

namespace {

constexpr std::string_view kTextType = "text/plain; charset=utf-8";

// Go's serveError: one line, and the header that tells `go tool pprof` to
// show it.
Reply error(int status, std::string message) {
    return Reply{.status = status,
                 .content_type = std::string(kTextType),
                 .content_disposition = {},
                 .go_pprof_error = true,
                 .body = std::move(message) + "\n"};
}

// The first value of `key`, as Go's FormValue takes it.
std::optional<std::string> param(const Params& params, const std::string& key) {
    const auto it = params.find(key);
    if (it == params.end()) return std::nullopt;
    return it->second;
}

// A decimal integer in [min, max], nothing else.
std::optional<int64_t> parse_int(std::string_view s, int64_t min, int64_t max) {
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || v < min || v > max) return std::nullopt;
    return v;
}

struct Live {
    int pid;
    std::string comm;
};

std::vector<Live> live_processes(const std::vector<int>& admitted) {
    std::vector<Live> out;
    for (const ProcessInfo& p : list_processes()) {
        if (!p.alive || !p.readable) continue;
        if (!admitted.empty() && std::find(admitted.begin(), admitted.end(), p.pid) == admitted.end()) continue;
        out.push_back({p.pid, p.command});
    }
    return out;
}

constexpr struct {
    std::string_view name, what;
} kProfiles[] = {
    {"allocs", "A sampling of every allocation since the agent started (pprof shows alloc_space)."},
    {"heap", "A sampling of the blocks in use, and of every allocation (pprof shows inuse_space)."},
    {"mutex", "Stacks that waited for contended locks, and how long (contentions, delay)."},
};

// Either the pid to profile or the error to send.
struct PidChoice {
    int pid = 0;
    std::optional<Reply> error;
};

PidChoice choose_pid(const Params& params, const std::vector<int>& admitted) {
    if (const auto given = param(params, "pid")) {
        const auto pid = parse_int(*given, 1, 999999999);
        if (!pid) return {0, error(400, fmt::format("invalid value for \"pid\": \"{}\" is not a process id", *given))};
        if (!admitted.empty() && std::find(admitted.begin(), admitted.end(), *pid) == admitted.end())
            return {0, error(404, fmt::format("process {} is not served here (serve was started with --pid)", *pid))};
        return {static_cast<int>(*pid), std::nullopt};
    }
    if (admitted.size() == 1) return {admitted.front(), std::nullopt};
    const std::vector<Live> live = live_processes(admitted);
    if (live.empty()) return {0, error(404, "no live instrumented process to profile here")};
    std::string names;
    for (size_t i = 0; i < live.size() && i < 20; ++i)
        names += fmt::format("{}{} ({})", i ? ", " : "", live[i].pid, live[i].comm);
    if (live.size() > 20) names += fmt::format(" and {} more", live.size() - 20);
    return {0, error(400, fmt::format("choose the process with ?pid=P: {} are served here: {}", live.size(), names))};
}

}  // namespace

Handler::Handler(Options options, Sleep sleep) : options_(std::move(options)), sleep_(std::move(sleep)) {}

Reply Handler::index(const Params& params) {
    // With one process (implicit, or named in ?pid=) the links need no pid.
    std::vector<Live> live = live_processes(options_.pids);
    std::string rows;
    for (const auto& p : kProfiles)
        rows += fmt::format("<tr><td><a href=\"{0}\">{0}</a></td><td><a href=\"{0}?debug=1\">text</a></td><td>{1}</td></tr>\n",
                            p.name, serve::html_escape(p.what));
    std::string procs;
    for (const Live& p : live) {
        procs += fmt::format("<tr><td>{}</td><td>{}</td>", p.pid, serve::html_escape(p.comm));
        for (const auto& prof : kProfiles)
            procs += fmt::format("<td><a href=\"{0}?pid={1}\">{0}</a> (<a href=\"{0}?pid={1}&amp;debug=1\">text</a>)</td>",
                                 prof.name, p.pid);
        procs += "</tr>\n";
    }
    if (procs.empty()) procs = "<tr><td colspan=\"5\">no live instrumented process</td></tr>\n";
    const bool implicit = options_.pids.size() == 1 || param(params, "pid").has_value();
    std::string body = fmt::format(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>/debug/pprof/</title>\n"
        "<style>body{{font-family:sans-serif}} td,th{{padding:2px 12px;text-align:left}}</style></head>\n"
        "<body><h1>/debug/pprof/</h1>\n"
        "<p>Profiles of native processes in Go's pprof format, as net/http/pprof serves them: "
        "<code>go tool pprof {}/debug/pprof/heap?pid=PID</code>. Parameters: <code>pid</code> "
        "(the process{}), <code>debug=1</code> (text), <code>seconds=N</code> (what changed in N seconds).</p>\n"
        "<table>\n<tr><th>Profile</th><th></th><th>What it holds</th></tr>\n{}</table>\n"
        "<h2>Processes</h2>\n<table>\n<tr><th>PID</th><th>COMMAND</th><th colspan=\"3\">Profiles</th></tr>\n{}</table>\n"
        "</body></html>\n",
        "http://HOST:PORT", implicit ? "; optional here, serve watches one" : "", rows, procs);
    return Reply{.status = 200,
                 .content_type = "text/html; charset=utf-8",
                 .content_disposition = {},
                 .go_pprof_error = false,
                 .body = std::move(body)};
}

Reply Handler::profile(std::string_view name, const Params& params) {
    const auto kind = parse_profile_kind(name);
    if (!kind) return error(404, fmt::format("Unknown profile: {} (gometrics serves allocs, heap and mutex)", name));

    int64_t debug = 0;
    if (const auto d = param(params, "debug")) {
        const auto parsed = parse_int(*d, 0, 1000);
        if (!parsed) return error(400, fmt::format("invalid value for \"debug\": \"{}\" is not 0, 1 or 2", *d));
        debug = *parsed;
    }
    int64_t seconds = 0;
    if (const auto s = param(params, "seconds")) {
        const auto parsed = parse_int(*s, 1, INT32_MAX);
        if (!parsed) return error(400, "invalid value for \"seconds\" - must be a positive integer");
        if (*parsed >= options_.write_timeout_s)
            return error(400, fmt::format("profile duration exceeds server's WriteTimeout: seconds must be below {} "
                                          "(serve --write-timeout)",
                                          options_.write_timeout_s));
        if (debug != 0) return error(400, "seconds and debug params are incompatible");
        seconds = *parsed;
    }
    const PidChoice choice = choose_pid(params, options_.pids);
    if (choice.error) return *choice.error;
    const int pid = choice.pid;

    auto reader = Reader::open(pid);
    if (!reader) return error(404, fmt::format("no live instrumented process {}: {}", pid, reader.error().message));
    if (!reader->HasProfile())
        return error(404, fmt::format("process {} does not profile (GOMETRICS_PROFILE_RATE=0 and "
                                      "GOMETRICS_MUTEX_PROFILE_FRACTION=0)",
                                      pid));
    const ReadOptions fresh{.fresh_timeout_ms = options_.fresh_timeout_ms, .max_tries = ReadOptions{}.max_tries};
    ProfileSource source{.pid = pid, .start_time_ns = reader->start_time_ns(), .mappings = {}};

    auto build = [&](const Profile& raw) { return build_profile(raw, *kind, source); };
    auto raw = reader->ReadProfile(fresh);
    if (!raw) return error(500, fmt::format("cannot read the profile of process {}: {}", pid, raw.error().message));
    auto mappings = pprof::read_mappings(pid);
    if (!mappings) return error(404, fmt::format("process {} has gone: {}", pid, mappings.error().message));
    source.mappings = std::move(*mappings);
    auto built = build(*raw);
    if (!built) return error(404, built.error().message);
    pprof::Profile profile = std::move(*built);

    if (seconds > 0) {
        {
            std::lock_guard lock(mu_);
            if (waiting_ >= options_.max_waiting)
                return error(503, fmt::format("{} delta profiles are already being taken; try again later", waiting_));
            ++waiting_;
        }
        const bool slept = sleep_(std::chrono::seconds(seconds));
        {
            std::lock_guard lock(mu_);
            --waiting_;
        }
        if (!slept) return error(503, "serve is stopping");
        // The same program, or the delta would mix two: an exec replaces the
        // segment (a new start time) and the code its addresses name.
        if (auto again = Reader::open(pid); !again || again->start_time_ns() != source.start_time_ns)
            return error(404, fmt::format("process {} exited or ran another program during the {} s", pid, seconds));
        auto raw1 = reader->ReadProfile(fresh);
        if (!raw1) return error(500, fmt::format("cannot read the profile of process {}: {}", pid, raw1.error().message));
        // Code loaded during the wait (dlopen) needs its mapping.
        if (auto m = pprof::read_mappings(pid); m) source.mappings = std::move(*m);
        auto built1 = build(*raw1);
        if (!built1) return error(404, built1.error().message);
        profile = delta(profile, *built1);
    }

    if (options_.symbolize) symbolize(profile, pid, source.start_time_ns);

    if (debug != 0) {
        const std::string type =
            profile.default_sample_type.empty() ? profile.sample_types.back().type : profile.default_sample_type;
        auto text = pprof::render_text(profile, *pprof::find_sample_type(profile, type), profile.samples.size());
        if (!text) return error(500, text.error().message);
        std::string body;
        for (const std::string& c : profile.comments) body += c + "\n";
        body += *text;
        return Reply{.status = 200,
                     .content_type = std::string(kTextType),
                     .content_disposition = {},
                     .go_pprof_error = false,
                     .body = std::move(body)};
    }
    auto message = pprof::encode(profile);
    if (!message) return error(500, message.error().message);
    auto packed = pprof::detail::gzip(*message);
    if (!packed) return error(500, packed.error().message);
    return Reply{.status = 200,
                 .content_type = "application/octet-stream",
                 .content_disposition = fmt::format("attachment; filename=\"{}{}\"", name, seconds > 0 ? "-delta" : ""),
                 .go_pprof_error = false,
                 .body = std::move(*packed)};
}

void Handler::symbolize(pprof::Profile& profile, int pid, uint64_t start_time_ns) {
    std::vector<std::string> files;
    for (const pprof::Mapping& m : profile.mappings) files.push_back(m.file);
    std::set<uint64_t> addresses;
    for (const pprof::Sample& s : profile.samples) addresses.insert(s.stack.begin(), s.stack.end());

    std::lock_guard lock(symbols_mu_);
    // Forget processes that have gone once the cache grows past what one
    // host plausibly runs under the agent.
    if (resolved_.size() > 1024) {
        for (auto it = resolved_.begin(); it != resolved_.end();)
            it = kill(it->first, 0) != 0 && errno == ESRCH ? resolved_.erase(it) : std::next(it);
    }
    Resolved& r = resolved_[pid];
    if (r.start_time_ns != start_time_ns || r.files != files || r.frames.size() > 200000)
        r = Resolved{start_time_ns, std::move(files), {}};
    if (std::any_of(addresses.begin(), addresses.end(), [&](uint64_t a) { return !r.frames.contains(a); })) {
        // Unsymbolized is still a valid profile: pprof then reads the binaries.
        auto built = pprof::Symbolizer::for_pid(pid);
        if (built) {
            for (uint64_t a : addresses)
                if (!r.frames.contains(a)) r.frames.emplace(a, (*built)->resolve(pprof::call_site(a)));
            built->reset();
        }
        // libdwfl's tens of MiB of DWARF tables, freed in this thread's
        // arena, would otherwise stay resident in every server thread.
        malloc_trim(0);
    }
    for (uint64_t a : addresses)
        if (const auto it = r.frames.find(a); it != r.frames.end() && !it->second.empty())
            profile.symbols.emplace(a, it->second);
}

pprof::Profile delta(const pprof::Profile& p0, const pprof::Profile& p1) {
    const size_t n = p1.sample_types.size();
    std::map<std::vector<uint64_t>, std::vector<int64_t>> by_stack;
    std::vector<const std::vector<uint64_t>*> order;  // p1's stacks first, then stacks only p0 has
    const auto add = [&](const pprof::Profile& p, int64_t sign) {
        for (const pprof::Sample& s : p.samples) {
            auto [it, fresh] = by_stack.try_emplace(s.stack, std::vector<int64_t>(n, 0));
            if (fresh) order.push_back(&it->first);
            for (size_t i = 0; i < n && i < s.values.size(); ++i) it->second[i] += sign * s.values[i];
        }
    };
    add(p1, 1);
    add(p0, -1);
    pprof::Profile out = p1;
    out.samples.clear();
    for (const auto* stack : order) {
        const std::vector<int64_t>& values = by_stack.at(*stack);
        if (std::all_of(values.begin(), values.end(), [](int64_t v) { return v == 0; })) continue;
        out.samples.push_back({*stack, values});
    }
    out.duration_nanos = p1.time_nanos > p0.time_nanos ? p1.time_nanos - p0.time_nanos : 0;
    out.comments.push_back(fmt::format("delta: what changed in the {:.1f} s between two profiles",
                                       static_cast<double>(out.duration_nanos) / 1e9));
    return out;
}

}  // namespace gometrics::cli::debug_pprof
