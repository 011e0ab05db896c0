// /proc readers and parsers; see proc.h.
#include "proc.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include "text.h"

namespace gometrics::sys {

using text::any_line;
using text::take_field;
using text::take_u64;

std::optional<std::string_view> read_file(int dirfd, const char* path, char* buf, size_t size) noexcept {
    const int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    const auto text = read_whole(fd, buf, size);
    close(fd);
    return text;
}

namespace {
constinit std::atomic<int> g_pid{0};
constinit std::atomic<bool> g_confined{false};
}  // namespace

// Sequentially consistent: the hook that sets it then waits for a snapshot
// that began before it, and a snapshot that begins after must see it.
void set_confined(bool confined) noexcept { g_confined.store(confined); }
bool confined() noexcept { return g_confined.load(); }

int self_pid() noexcept {
    if (confined()) return g_pid.load(std::memory_order_relaxed);
    const int pid = getpid();  // the truth, also in a child of a raw clone(), which runs no fork handler
    g_pid.store(pid, std::memory_order_relaxed);
    return pid;
}

std::optional<std::string_view> read_whole(int fd, char* buf, size_t size) noexcept {
    size_t n = 0;
    while (n < size) {
        const size_t want = size - n;
        const ssize_t r = pread(fd, buf + n, want, static_cast<off_t>(n));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += static_cast<size_t>(r);
        // /proc and cgroup files give all they have in one read when it
        // fits: a short read is the end. That saves a read per file, and
        // there is one file per thread to read.
        if (static_cast<size_t>(r) < want) break;
    }
    if (n == 0) return std::nullopt;
    return std::string_view(buf, n);
}

std::optional<uint64_t> status_field(std::string_view status, std::string_view key) noexcept {
    std::optional<uint64_t> out;
    status_fields(status, {&key, 1}, {&out, 1});
    return out;
}

void status_fields(std::string_view status, std::span<const std::string_view> keys,
                   std::span<std::optional<uint64_t>> out) noexcept {
    const size_t n = std::min({keys.size(), out.size(), size_t{64}});
    uint64_t wanted = n == 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
    // The keys' first characters: most of status' 60 lines are passed over
    // on their first, a publisher reads it at every snapshot.
    uint64_t firsts[4] = {};
    for (size_t i = 0; i < n; ++i) {
        out[i].reset();
        const auto c = static_cast<unsigned char>(keys[i].empty() ? 0 : keys[i][0]);
        firsts[c >> 6] |= uint64_t{1} << (c & 63);
    }
    any_line(status, [&](std::string_view line) {
        const auto c = static_cast<unsigned char>(line.empty() ? 0 : line[0]);
        if (!(firsts[c >> 6] >> (c & 63) & 1)) return false;
        for (size_t i = 0; i < n; ++i) {
            const std::string_view key = keys[i];
            if (!(wanted >> i & 1) || line.size() <= key.size() || line[key.size()] != ':' || !line.starts_with(key))
                continue;
            line.remove_prefix(key.size() + 1);
            out[i] = take_u64(line);  // the first line of the key decides, number or not
            wanted &= ~(uint64_t{1} << i);
            break;
        }
        return wanted == 0;
    });
}

namespace {

// Calls f(number, field) for fields 3 to `last` of a stat text, counted
// from after the last ')' (comm may contain anything); false if a field is
// missing or f returns false.
template <class F>
bool stat_fields(std::string_view text, int last, F&& f) {
    const size_t paren = text.rfind(')');
    if (paren == std::string_view::npos) return false;
    std::string_view rest = text.substr(paren + 1);
    for (int field = 3; field <= last; ++field) {
        const std::string_view v = take_field(rest);
        if (v.empty() || !f(field, v)) return false;
    }
    return true;
}

}  // namespace

std::optional<ProcStat> parse_stat(std::string_view text) noexcept {
    ProcStat st{};
    const bool ok = stat_fields(text, 22, [&](int field, std::string_view f) {
        uint64_t* to = nullptr;
        switch (field) {
            case 10: to = &st.minflt; break;
            case 12: to = &st.majflt; break;
            case 14: to = &st.utime; break;
            case 15: to = &st.stime; break;
            case 20: to = &st.num_threads; break;
            case 22: to = &st.starttime; break;
            default: return true;  // state is a letter; tty_nr, priority and nice may be negative
        }
        const auto v = text::parse_u64(f);
        if (v) *to = *v;
        return v.has_value();
    });
    if (!ok) return std::nullopt;
    return st;
}

std::optional<uint64_t> stat_field(std::string_view text, int field) noexcept {
    std::optional<uint64_t> out;
    if (field < 3) return std::nullopt;
    stat_fields(text, field, [&](int at, std::string_view f) {
        if (at == field) out = text::parse_u64(f);
        return true;
    });
    return out;
}

std::optional<char> stat_state(std::string_view text) noexcept {
    std::optional<char> out;
    stat_fields(text, 3, [&](int, std::string_view f) {
        if (f.size() == 1) out = f[0];
        return true;
    });
    return out;
}

std::optional<Schedstat> parse_schedstat(std::string_view text) noexcept {
    const auto run = take_u64(text), wait = take_u64(text), slices = take_u64(text);
    if (!run || !wait || !slices) return std::nullopt;
    return Schedstat{*run, *wait, *slices};
}

namespace {

std::optional<uint64_t> hex(std::string_view s) noexcept {
    uint64_t v = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v, 16);
    if (s.empty() || r.ec != std::errc{} || r.ptr != s.data() + s.size()) return std::nullopt;
    return v;
}

}  // namespace

std::optional<MapsLine> parse_maps_line(std::string_view line) noexcept {
    std::string_view rest = line;
    const std::string_view range = take_field(rest), perms = take_field(rest), offset = take_field(rest);
    const std::string_view dev = take_field(rest), inode = take_field(rest);
    const size_t dash = range.find('-');
    if (dash == range.npos || perms.size() != 4 || dev.empty() || inode.empty()) return std::nullopt;
    const auto start = hex(range.substr(0, dash)), end = hex(range.substr(dash + 1)), off = hex(offset);
    if (!start || !end || !off) return std::nullopt;
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (!rest.empty() && rest.back() == '\n') rest.remove_suffix(1);
    return MapsLine{*start, *end, *off, perms, rest};
}

}  // namespace gometrics::sys
