// Descriptors kept out of the program's way; see kept_file.h.
#include "kept_file.h"

#include "proc.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace gometrics::sys {

namespace {
// Below this soft limit every descriptor may be one the program counts on.
constexpr rlim_t kMinLimit = 256;
// Kept descriptors live in the top of the first 1024 (a larger soft limit
// would make the kernel grow the table to our number) ...
constexpr rlim_t kTop = 1024;
// ... in this many numbers, far above what programs reach by the lowest-free rule.
constexpr int kBand = 48;
constinit std::atomic<int> g_open{0};
constinit std::atomic<bool> g_confined{false};
// Which numbers below kTop KeptFiles hold (kept numbers are always below).
constinit std::atomic<uint64_t> g_kept_bits[kTop / 64]{};
__thread bool tls_private_table [[gnu::tls_model("initial-exec")]] = false;

void mark_kept(int fd, bool kept) noexcept {
    if (fd < 0 || rlim_t(fd) >= kTop) return;
    const uint64_t bit = uint64_t{1} << (fd % 64);
    if (kept) g_kept_bits[fd / 64].fetch_or(bit);
    else g_kept_bits[fd / 64].fetch_and(~bit);
}

bool is_kept(int fd) noexcept { return g_kept_bits[fd / 64].load() >> (fd % 64) & 1; }

// close_range, or one close at a time where the kernel lacks it (before 5.9).
void close_numbers(unsigned first, unsigned last) noexcept {
    if (syscall(SYS_close_range, first, last, 0) == 0) return;
    for (unsigned fd = first; fd <= last && fd < kTop; ++fd) ::close(int(fd));
}
}  // namespace

int take_private_descriptor_table() noexcept {
    if (unshare(CLONE_FILES) != 0) return errno;
    // The copy holds the program's files too: let go of them at once, or a
    // socket it closes would stay open (no EOF for its peer) through ours.
    unsigned first = 0;
    for (unsigned fd = 0; fd < kTop; ++fd) {
        if (!is_kept(int(fd)) && fd != STDERR_FILENO) continue;
        if (fd > first) close_numbers(first, fd - 1);
        first = fd + 1;
    }
    close_numbers(first, ~0U);
    tls_private_table = true;
    return 0;
}

bool has_private_descriptor_table() noexcept { return tls_private_table; }

// Sequentially consistent: the hook that sets it then waits for a snapshot
// that began before it, and a snapshot that begins after must see it.
void set_confined(bool confined) noexcept { g_confined.store(confined); }
bool confined() noexcept { return g_confined.load(); }

int kept_count() noexcept { return g_open.load(std::memory_order_relaxed); }

int kept_fd_floor() noexcept {
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur < kMinLimit) return -1;
    const rlim_t top = r.rlim_cur < kTop ? r.rlim_cur : kTop;
    return static_cast<int>(top) - kBand;
}

int KeptFile::open(int dirfd, const char* path, int flags, mode_t mode) noexcept {
    close();
    if (kept_fd_floor() < 0) return EMFILE;
    const int low = ::openat(dirfd, path, flags | O_CLOEXEC, mode);
    if (low < 0) return errno;
    const int err = adopt(low);
    ::close(low);
    return err;
}

int KeptFile::adopt(int fd) noexcept {
    close();
    lost_ = said_ = false;
    const int floor = kept_fd_floor();
    if (floor < 0) return EMFILE;
    const int high = fcntl(fd, F_DUPFD_CLOEXEC, floor);
    if (high < 0) return errno;
    struct stat st {};
    if (fstat(high, &st) != 0) {
        const int e = errno;
        ::close(high);
        return e;
    }
    fd_ = high;
    mark_kept(high, true);
    writable_ = (fcntl(high, F_GETFL) & O_ACCMODE) != O_RDONLY;
    g_open.fetch_add(1, std::memory_order_relaxed);
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    return 0;
}

int KeptFile::fd() noexcept {
    if (fd_ < 0) return -1;
    if (confined()) return writable_ ? -1 : fd_;
    struct stat st {};
    if (fstat(fd_, &st) != 0 || st.st_dev != dev_ || st.st_ino != ino_) {
        mark_kept(fd_, false);
        fd_ = -1;  // the program's now, or nobody's: never ours again
        lost_ = true;
        g_open.fetch_sub(1, std::memory_order_relaxed);
        return -1;
    }
    return fd_;
}

bool KeptFile::lost_now() noexcept {
    if (!lost_ || said_) return false;
    said_ = true;
    return true;
}

std::optional<std::string_view> KeptFile::read(char* buf, size_t size) noexcept {
    const int f = fd();
    if (f < 0) return std::nullopt;
    return read_whole(f, buf, size);
}

std::optional<std::string_view> KeptFile::peek(char* buf, size_t size) const noexcept {
    if (fd_ < 0 || writable_) return std::nullopt;
    return read_whole(fd_, buf, size);
}

void KeptFile::close() noexcept {
    if (fd() >= 0) {
        mark_kept(fd_, false);
        ::close(fd_);
        g_open.fetch_sub(1, std::memory_order_relaxed);
    }
    fd_ = -1;
}

}  // namespace gometrics::sys

