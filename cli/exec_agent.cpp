// Finding the agent for `exec`; see exec_agent.h.
#include "exec_agent.h"

#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "common.h"
#include "files.h"

#ifndef GOMETRICS_LIBDIR
#define GOMETRICS_LIBDIR "lib"
#endif

namespace gometrics::cli {

namespace fs = std::filesystem;

namespace {

// A path the dynamic loader would preload: a shared object, named without
// the spaces and colons that split LD_PRELOAD. Otherwise the loader only
// warns, and CMD would run without the agent as if all were well.
std::string preloadable(const std::string& path, const std::string& said_as) {
    if (path.find_first_of(" :") != std::string::npos)
        throw Failure(kExitError, fmt::format("{}: LD_PRELOAD cannot name a path with a space or a colon", said_as));
    const int fd = sys::open_regular(path.c_str(), O_RDONLY);
    if (fd < 0) throw Failure(kExitError, fmt::format("{}: {}", said_as, sys::open_error(errno)));
    Elf64_Ehdr h{};
    const bool read_whole = ::pread(fd, &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h);
    ::close(fd);
    if (!read_whole || std::memcmp(h.e_ident, ELFMAG, SELFMAG) != 0 || h.e_type != ET_DYN)
        throw Failure(kExitError, fmt::format("{}: not a shared object (the agent is libgometrics.so)", said_as));
    return path;
}

}  // namespace

std::string find_agent() {
    if (const char* env = getenv("GOMETRICS_AGENT"); env && *env)
        return preloadable(fs::absolute(env).string(), fmt::format("GOMETRICS_AGENT={}", env));
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) throw Failure(kExitError, "cannot find the agent: /proc/self/exe is unreadable; set GOMETRICS_AGENT");
    const fs::path dir = self.parent_path();
    // Installed (prefix/bin next to prefix/<libdir>, multiarch or not), then the build tree.
    const fs::path candidates[] = {dir / ".." / GOMETRICS_LIBDIR / "libgometrics.so",
                                   dir / ".." / "lib" / "libgometrics.so", dir / ".." / "agent" / "libgometrics.so"};
    for (const auto& c : candidates)
        if (access(c.c_str(), R_OK) == 0) return preloadable(fs::weakly_canonical(c).string(), c.string());
    throw Failure(kExitError, fmt::format("cannot find libgometrics.so next to {} (looked in ../{}, ../lib, "
                                          "../agent); set GOMETRICS_AGENT",
                                          self.string(), GOMETRICS_LIBDIR));
}

}  // namespace gometrics::cli
