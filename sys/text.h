// Small parsers over the text of kernel files: no allocation, no
// exceptions, for the agent and the reader alike.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>

namespace gometrics::sys::text {

// A decimal number at the start of `s` (after blanks), advancing s past it.
inline std::optional<uint64_t> take_u64(std::string_view& s) noexcept {
    size_t i = 0;
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    uint64_t v = 0;
    const auto r = std::from_chars(s.data() + i, s.data() + s.size(), v);
    if (r.ec != std::errc{}) return std::nullopt;
    s.remove_prefix(static_cast<size_t>(r.ptr - s.data()));
    return v;
}

// The whole of `s` as a decimal number, or nullopt.
inline std::optional<uint64_t> parse_u64(std::string_view s) noexcept {
    uint64_t v = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc{} || r.ptr != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

// The next space-separated field of `s`, advancing s.
inline std::string_view take_field(std::string_view& s) noexcept {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    size_t end = 0;  // a plain loop: find_first_of calls memchr once per character
    while (end < s.size() && s[end] != ' ' && s[end] != '\n') ++end;
    const std::string_view f = s.substr(0, end);
    s.remove_prefix(end);
    return f;
}

// Where " - " starts in `line` (mountinfo's separator), or npos: found from
// its '-', as a search for the string stops at every space before it.
inline size_t find_separator(std::string_view line) noexcept {
    for (size_t d = line.find('-', 1); d != line.npos; d = line.find('-', d + 1))
        if (line[d - 1] == ' ' && d + 1 < line.size() && line[d + 1] == ' ') return d - 1;
    return line.npos;
}

// Each line of `text`, in order, until f returns true; whether it did.
template <class F>
bool any_line(std::string_view text, F&& f) {
    while (!text.empty()) {
        const size_t nl = text.find('\n');
        if (f(text.substr(0, nl))) return true;
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
    return false;
}

// Whether `word` is one of the comma-separated items of `list`.
inline bool has_item(std::string_view list, std::string_view word) noexcept {
    while (!list.empty()) {
        const size_t comma = list.find(',');
        if (list.substr(0, comma) == word) return true;
        if (comma == list.npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

}  // namespace gometrics::sys::text
