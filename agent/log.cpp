// The agent's stderr messages; see log.h.
#include "log.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "kept_file.h"

namespace gometrics::agent::log {

void line(std::initializer_list<std::string_view> parts) noexcept {
    char buf[512];
    size_t n = 0;
    auto put = [&](std::string_view s) {
        const size_t k = s.size() < sizeof buf - 1 - n ? s.size() : sizeof buf - 1 - n;
        if (k) std::memcpy(buf + n, s.data(), k);  // an empty view's data() may be null
        n += k;
    };
    put("gometrics: ");
    for (auto p : parts) put(p);
    buf[n++] = '\n';
    const int fd = sys::borrow_program_fd(STDERR_FILENO);  // the program's stderr as it is now
    for (size_t off = 0; fd >= 0 && off < n;) {
        const ssize_t w = ::write(fd, buf + off, n - off);
        if (w <= 0) break;
        off += static_cast<size_t>(w);
    }
    sys::release_program_fd(fd, STDERR_FILENO);
}

void fatal(std::string_view what) noexcept {
    line({"fatal: ", what});
    std::abort();
}

std::string_view dec(long long v, char (&buf)[24]) noexcept {
    char* end = buf + sizeof buf;
    char* p = end;
    const bool neg = v < 0;
    unsigned long long u = neg ? 0ULL - static_cast<unsigned long long>(v) : static_cast<unsigned long long>(v);
    do {
        *--p = static_cast<char>('0' + u % 10);
        u /= 10;
    } while (u);
    if (neg) *--p = '-';
    return {p, static_cast<size_t>(end - p)};
}

}  // namespace gometrics::agent::log
