// The exit report; see report.h. Runs on the exit path under a Guard, so the
// allocations fmt makes are the agent's own and are not counted.
#include "report.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <string>

#include <fmt/format.h>

#include "log.h"

namespace gometrics::agent {

namespace {

const char* kind_name(layout::Kind k) {
    switch (k) {
        case layout::kKindUint64: return "uint64";
        case layout::kKindFloat64: return "float64";
        case layout::kKindFloat64Histogram: return "float64-histogram";
        default: return "bad";
    }
}

void append_number(fmt::memory_buffer& out, double v) {
    if (std::isinf(v))
        fmt::format_to(std::back_inserter(out), "\"{}Inf\"", v > 0 ? '+' : '-');
    else if (std::isnan(v))
        fmt::format_to(std::back_inserter(out), "\"NaN\"");
    else
        fmt::format_to(std::back_inserter(out), "{}", v);
}

void append_value(fmt::memory_buffer& out, const collect::Metric& m, const uint64_t* w) {
    switch (m.kind) {
        case layout::kKindUint64: fmt::format_to(std::back_inserter(out), "{}", *w); break;
        case layout::kKindFloat64: append_number(out, std::bit_cast<double>(*w)); break;
        case layout::kKindFloat64Histogram: {
            fmt::format_to(std::back_inserter(out), "{{\"buckets\": [");
            for (size_t i = 0; i < m.bounds.size(); ++i) {
                if (i) fmt::format_to(std::back_inserter(out), ", ");
                append_number(out, m.bounds[i]);
            }
            fmt::format_to(std::back_inserter(out), "], \"counts\": [{}]}}",
                           fmt::join(w, w + m.bounds.size() - 1, ", "));
            break;
        }
        default: fmt::format_to(std::back_inserter(out), "null");
    }
}

std::string expand_path(const char* path) {
    std::string p = path;
    for (size_t at; (at = p.find("%p")) != std::string::npos;) p.replace(at, 2, std::to_string(getpid()));
    return p;
}

}  // namespace

void write_report(const char* path, std::span<const collect::Metric* const> metrics, const uint64_t* words,
                  std::span<const size_t> word_offset) noexcept {
    try {
        fmt::memory_buffer out;
        fmt::format_to(std::back_inserter(out), "{{\"pid\": {}, \"metrics\": [\n", getpid());
        for (size_t i = 0; i < metrics.size(); ++i) {
            const auto& m = *metrics[i];
            fmt::format_to(std::back_inserter(out), "  {{\"name\": \"{}\", \"kind\": \"{}\", \"cumulative\": {}, \"value\": ",
                           m.name, kind_name(m.kind), m.cumulative);
            append_value(out, m, words + word_offset[i]);
            fmt::format_to(std::back_inserter(out), "}}{}\n", i + 1 < metrics.size() ? "," : "");
        }
        fmt::format_to(std::back_inserter(out), "]}}\n");

        const std::string final_path = expand_path(path);
        const std::string tmp = final_path + ".tmp." + std::to_string(getpid());
        const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            log::line({"cannot write report ", final_path, ": ", strerror(errno)});
            return;
        }
        size_t off = 0;
        while (off < out.size()) {
            const ssize_t n = ::write(fd, out.data() + off, out.size() - off);
            if (n <= 0) break;
            off += static_cast<size_t>(n);
        }
        close(fd);
        if (off != out.size() || rename(tmp.c_str(), final_path.c_str()) != 0) {
            log::line({"cannot write report ", final_path});
            unlink(tmp.c_str());
        }
    } catch (...) {
        log::line({"cannot write report: out of memory"});
    }
}

}  // namespace gometrics::agent
