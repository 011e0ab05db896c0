// Walking a directory with getdents64 into a caller's buffer: no opendir
// (which allocates), for the agent's publisher on a kept descriptor.
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>

namespace gometrics::sys {

// Calls f(name) for each entry of the open directory `dirfd` from its
// current offset ("." and ".." included), reading `size` bytes at a time
// into buf (8-byte aligned). Returns false if a read failed.
template <class F>
bool for_each_dirent(int dirfd, char* buf, size_t size, F&& f) {
    for (;;) {
        const long got = syscall(SYS_getdents64, dirfd, buf, size);
        if (got == 0) return true;
        if (got < 0) return false;
        for (long off = 0; off < got;) {
            // struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
            unsigned short reclen;
            __builtin_memcpy(&reclen, buf + off + 16, sizeof reclen);
            f(static_cast<const char*>(buf + off + 19));
            off += reclen;
        }
    }
}

}  // namespace gometrics::sys
