// Shared pieces of the CLI commands; see common.h.
#include "common.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include <fmt/format.h>

#include "commands.h"

namespace gometrics::cli {

bool write_all(int fd, std::string_view text) noexcept {
    while (!text.empty()) {
        const ssize_t n = ::write(fd, text.data(), text.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        text.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

void write_stderr(std::string_view text) noexcept { (void)write_all(STDERR_FILENO, text); }

bool stdout_complete() noexcept {
    const bool streams = static_cast<bool>(std::cout.flush());
    errno = 0;
    const bool stdio = std::fflush(stdout) == 0 && !std::ferror(stdout);
    if (streams && stdio) return true;
    eprint("gometrics-cli: cannot write the output: {}", errno ? std::strerror(errno) : "stdout is closed or full");
    return false;
}

const CLI::Validator kDecimal(
    [](std::string& s) -> std::string {
        const size_t sign = !s.empty() && s[0] == '-';
        if (s.size() == sign || s.find_first_not_of("0123456789", sign) != std::string::npos)
            return fmt::format("expected a decimal integer, got '{}'", s);
        const size_t first = s.find_first_not_of('0', sign);
        s.erase(sign, (first == std::string::npos ? s.size() - 1 : first) - sign);
        return {};
    },
    "INT");

const CLI::Validator kValue(
    [](std::string& s) -> std::string { return s.empty() || s == "--" ? fmt::format("expected a value, got '{}'", s) : ""; },
    "");

std::string printable(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    const auto at = [&](size_t k) { return k < text.size() ? static_cast<unsigned char>(text[k]) : 0u; };
    for (size_t i = 0; i < text.size();) {
        const unsigned b = at(i), c = at(i + 1);
        // The length of a well-formed UTF-8 sequence starting here (no
        // overlong form, surrogate or code point past U+10FFFF), or 0.
        size_t n = b < 0x80                   ? 1
                   : b >= 0xc2 && b <= 0xdf   ? 2
                   : b >= 0xe0 && b <= 0xef   ? 3
                   : b >= 0xf0 && b <= 0xf4   ? 4
                                              : 0;
        for (size_t k = 1; k < n; ++k)
            if ((at(i + k) & 0xc0) != 0x80) n = 0;
        if ((b == 0xe0 && c < 0xa0) || (b == 0xed && c >= 0xa0) || (b == 0xf0 && c < 0x90) || (b == 0xf4 && c >= 0x90))
            n = 0;
        // Control characters, C1's (U+0080-U+009F: a terminal takes 0x9B for
        // CSI) and the bidirectional overrides that reorder what follows.
        const bool control = n == 1 ? b < 0x20 || b == 0x7f
                                    : n == 2 ? b == 0xc2 && c < 0xa0
                                             : n == 3 && b == 0xe2 && c == 0x80 && at(i + 2) >= 0xaa && at(i + 2) <= 0xae;
        const bool isolate = n == 3 && b == 0xe2 && c == 0x81 && at(i + 2) >= 0xa6 && at(i + 2) <= 0xa9;
        if (n == 0 || control || isolate) {
            out += '?';  // one for the whole character, or for each byte that is none
            i += n ? n : 1;
        } else {
            out.append(text.substr(i, n));
            i += n;
        }
    }
    return out;
}

int pick_pid(std::optional<int> pid) {
    if (pid) return *pid;
    std::vector<ProcessInfo> live;
    for (auto& p : list_processes())
        if (p.alive && p.readable) live.push_back(p);
    if (live.size() == 1) return live[0].pid;
    if (live.empty()) throw Failure(kExitError, "no live instrumented process of this user (run a program with LD_PRELOAD=libgometrics.so)");
    std::string names;
    for (auto& p : live) names += fmt::format("{}{} ({})", names.empty() ? "" : ", ", p.pid, printable(p.command));
    throw Failure(kExitError, fmt::format("{} instrumented processes, choose one with --pid: {}", live.size(), names));
}

Reader open_or_fail(int pid) {
    auto r = Reader::open(pid);
    if (!r) throw Failure(kExitError, r.error().message);
    return std::move(*r);
}

std::string format_scalar(const Value& v) {
    switch (v.kind) {
        case ValueKind::Uint64: return fmt::format("{}", v.u64);
        case ValueKind::Float64: return fmt::format("{}", v.f64);
        default: return "unsupported";
    }
}

}  // namespace gometrics::cli
