// Opening a file that a process or a user named, which may be anything but
// the regular file asked for: a FIFO (whose open blocks until a writer
// comes), a device, a directory.
#pragma once

namespace gometrics::sys {

// open(path, flags) that never blocks and returns only a regular file: -1
// with errno EINVAL for anything else (see open_error), or open's errno.
int open_regular(const char* path, int flags) noexcept;

// What failed, for an open_regular that returned -1 with errno e.
const char* open_error(int e) noexcept;

}  // namespace gometrics::sys
