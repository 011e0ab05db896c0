#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

namespace gometrics::sys {

int open_regular(const char* path, int flags) noexcept {
    // O_NONBLOCK: a FIFO's open returns at once instead of waiting for a
    // writer; on a regular file the flag changes nothing.
    const int fd = ::open(path, flags | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    const bool stated = fstat(fd, &st) == 0;
    if (!stated || !S_ISREG(st.st_mode)) {
        const int e = stated ? EINVAL : errno;
        ::close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

const char* open_error(int e) noexcept { return e == EINVAL ? "not a regular file" : strerror(e); }

}  // namespace gometrics::sys
