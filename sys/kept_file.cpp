// Descriptors kept out of the program's way; see kept_file.h.
#include "kept_file.h"

#include "buffer.h"
#include "proc.h"
#include "text.h"

#include <fcntl.h>
#include <linux/close_range.h>
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
// Which numbers below kTop KeptFiles hold (kept numbers are always below).
constinit std::atomic<uint64_t> g_kept_bits[kTop / 64]{};
__thread bool tls_private_table [[gnu::tls_model("initial-exec")]] = false;

// The file each kept number names (for is_kept_entry).
struct FileId {
    std::atomic<uint64_t> dev, ino;
};
GOMETRICS_BUFFER constinit FileId g_kept_ids[kTop]{};

void mark_kept(int fd, bool kept, dev_t dev = 0, ino_t ino = 0) noexcept {
    if (fd < 0 || rlim_t(fd) >= kTop) return;
    g_kept_ids[fd].dev.store(dev);
    g_kept_ids[fd].ino.store(ino);
    const uint64_t bit = uint64_t{1} << (fd % 64);
    if (kept) g_kept_bits[fd / 64].fetch_or(bit);
    else g_kept_bits[fd / 64].fetch_and(~bit);
}

bool is_kept(int fd) noexcept { return g_kept_bits[fd / 64].load() >> (fd % 64) & 1; }

}  // namespace

// The process itself as a pidfd, in the private table: the way back to the
// program's descriptors (borrow_program_fd).
constinit int g_self_pidfd = -1;

int take_private_descriptor_table() noexcept {
    // close_range's CLOSE_RANGE_UNSHARE copies the table and closes a range
    // of the copy in one call (container filters that refuse unshare allow
    // it). The copy holds the program's files too: it lets go of them at
    // once, or a socket the program closes would stay open (no EOF for its
    // peer) through ours. The first range's call makes the copy.
    unsigned first = 0, flags = CLOSE_RANGE_UNSHARE;
    for (unsigned fd = 0; fd <= kTop; ++fd) {
        if (fd < kTop && !is_kept(int(fd))) continue;
        const unsigned last = fd < kTop ? fd - 1 : ~0U;
        if (fd > first || fd == kTop) {
            if (syscall(SYS_close_range, first, last, flags) != 0 && flags) return errno;
            flags = 0;
        }
        first = fd + 1;
    }
    tls_private_table = true;
    g_self_pidfd = static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0));
    return 0;
}

bool has_private_descriptor_table() noexcept { return tls_private_table; }

bool is_kept_entry(int proc_fd_dir, const char* name) noexcept {
    const auto n = text::parse_u64(name);
    if (!n || *n >= kTop) return false;
    const int fd = static_cast<int>(*n);
    struct stat st {};
    return is_kept(fd) && fstatat(proc_fd_dir, name, &st, 0) == 0 && g_kept_ids[fd].dev.load() == st.st_dev &&
           g_kept_ids[fd].ino.load() == st.st_ino;
}

int borrow_program_fd(int fd) noexcept {
    if (!tls_private_table) return fd;
    if (g_self_pidfd < 0 || confined()) return -1;
    return static_cast<int>(syscall(SYS_pidfd_getfd, g_self_pidfd, fd, 0));
}

void release_program_fd(int borrowed, int fd) noexcept {
    if (borrowed >= 0 && borrowed != fd) ::close(borrowed);
}


namespace {
// The floor a KeptFloorHeld read; 0: none held.
__thread int tls_held_floor [[gnu::tls_model("initial-exec")]] = 0;
}  // namespace

KeptFloorHeld::KeptFloorHeld() noexcept : outer_(tls_held_floor) {
    tls_held_floor = 0;
    tls_held_floor = kept_fd_floor();
}
KeptFloorHeld::~KeptFloorHeld() { tls_held_floor = outer_; }

int kept_fd_floor() noexcept {
    if (tls_held_floor) return tls_held_floor;
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur < kMinLimit) return -1;
    const rlim_t top = r.rlim_cur < kTop ? r.rlim_cur : kTop;
    return static_cast<int>(top) - kBand;
}

int KeptFile::open(int dirfd, const char* path, int flags, mode_t mode) noexcept {
    close();
    const int floor = kept_fd_floor();
    if (floor < 0) return EMFILE;
    const int low = ::openat(dirfd, path, flags | O_CLOEXEC, mode);
    if (low < 0) return errno;
    // The access mode asked for is the one F_GETFL would report (O_PATH
    // drops it): a system call fewer per kept file at start-up.
    const int err = keep(low, floor, !(flags & O_PATH) && (flags & O_ACCMODE) != O_RDONLY);
    ::close(low);
    return err;
}

int KeptFile::adopt(int fd) noexcept {
    close();
    lost_ = said_ = false;
    const int floor = kept_fd_floor();
    if (floor < 0) return EMFILE;
    const int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return errno;
    return keep(fd, floor, (fl & O_ACCMODE) != O_RDONLY);
}

int KeptFile::keep(int fd, int floor, bool writable) noexcept {
    lost_ = said_ = false;
    const int high = fcntl(fd, F_DUPFD_CLOEXEC, floor);
    if (high < 0) return errno;
    struct stat st {};
    if (fstat(high, &st) != 0) {
        const int e = errno;
        ::close(high);
        return e;
    }
    fd_ = high;
    writable_ = writable;
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    mark_kept(high, true, dev_, ino_);
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
    }
    fd_ = -1;
}

}  // namespace gometrics::sys

