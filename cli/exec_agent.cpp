// Finding the agent for `exec`; see exec_agent.h.
#include "exec_agent.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "common.h"

#ifndef GOMETRICS_LIBDIR
#define GOMETRICS_LIBDIR "lib"
#endif

namespace gometrics::cli {

namespace fs = std::filesystem;

std::string find_agent() {
    if (const char* env = getenv("GOMETRICS_AGENT"); env && *env) {
        if (access(env, R_OK) != 0)
            throw Failure(kExitError, fmt::format("GOMETRICS_AGENT={}: {}", env, std::strerror(errno)));
        return fs::absolute(env).string();
    }
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) throw Failure(kExitError, "cannot find the agent: /proc/self/exe is unreadable; set GOMETRICS_AGENT");
    const fs::path dir = self.parent_path();
    // Installed (prefix/bin next to prefix/<libdir>, multiarch or not), then the build tree.
    const fs::path candidates[] = {dir / ".." / GOMETRICS_LIBDIR / "libgometrics.so",
                                   dir / ".." / "lib" / "libgometrics.so", dir / ".." / "agent" / "libgometrics.so"};
    for (const auto& c : candidates)
        if (access(c.c_str(), R_OK) == 0) return fs::weakly_canonical(c).string();
    throw Failure(kExitError, fmt::format("cannot find libgometrics.so next to {} (looked in ../{}, ../lib, "
                                          "../agent); set GOMETRICS_AGENT",
                                          self.string(), GOMETRICS_LIBDIR));
}

}  // namespace gometrics::cli
