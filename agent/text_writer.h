// The one writer of the agent's text outputs (exit report, profile report,
// trace lines): formats into a buffer its caller owns (a stack array, or a
// mapping sized beforehand), never allocates, never writes past the end. A
// writer that runs out of room stops and says so (full()).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstring>
#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace gometrics::agent {

class TextWriter {
public:
    TextWriter(char* buf, size_t cap) noexcept : begin_(buf), at_(buf), end_(buf + cap) {}

    TextWriter& text(std::string_view s) noexcept {
        if (full_ || s.size() > room()) {
            full_ = true;
            return *this;
        }
        std::memcpy(at_, s.data(), s.size());
        at_ += s.size();
        return *this;
    }

    template <class... Args>
    TextWriter& format(fmt::format_string<Args...> f, Args&&... args) noexcept {
        if (full_) return *this;
        const auto r = fmt::format_to_n(at_, room(), f, std::forward<Args>(args)...);
        if (r.size > room()) full_ = true;  // what was cut short lies past at_: not part of the text
        else at_ = r.out;
        return *this;
    }

    // A JSON number; infinities and NaN as the quoted strings the CLI reads.
    TextWriter& json_number(double v) noexcept {
        if (std::isinf(v)) return format("\"{}Inf\"", v > 0 ? '+' : '-');
        if (std::isnan(v)) return text("\"NaN\"");
        return format("{}", v);
    }

    // A JSON string: quotes, backslashes and control characters escaped.
    TextWriter& json_string(std::string_view s) noexcept {
        text("\"");
        for (const char c : s) {
            if (c == '"' || c == '\\') format("\\{}", c);
            else if (static_cast<unsigned char>(c) < 0x20) format("\\u{:04x}", static_cast<unsigned>(c));
            else text({&c, 1});
        }
        return text("\"");
    }

    std::string_view view() const noexcept { return {begin_, static_cast<size_t>(at_ - begin_)}; }
    bool full() const noexcept { return full_; }
    // The last character written ('\0' when none).
    char back() const noexcept { return at_ > begin_ ? at_[-1] : '\0'; }

private:
    size_t room() const noexcept { return static_cast<size_t>(end_ - at_); }

    char* begin_;
    char* at_;
    char* end_;
    bool full_ = false;
};

}  // namespace gometrics::agent
