// Finding and loading serve's and profile's modules; see modules.h.
#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>

#include <fmt/format.h>

#include "common.h"
#include "modules.h"

#ifndef GOMETRICS_LIBDIR
#define GOMETRICS_LIBDIR "lib"
#endif
#ifndef GOMETRICS_VERSION
#define GOMETRICS_VERSION "unknown"
#endif

namespace gometrics::cli {

namespace {

std::string self_dir() {
    char buf[4096];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf);
    if (n <= 0 || static_cast<size_t>(n) == sizeof buf)
        throw Failure(kExitError, fmt::format("cannot find the CLI's modules: /proc/self/exe: {}", std::strerror(errno)));
    std::string path(buf, static_cast<size_t>(n));
    return path.substr(0, path.rfind('/'));
}

// Installed (prefix/bin beside prefix/<libdir>/gometrics), then the build
// tree, where meson puts the modules beside the CLI.
std::string find_module(const char* module) {
    const std::string dir = self_dir();
    const std::string candidates[] = {fmt::format("{}/../{}/gometrics/{}", dir, GOMETRICS_LIBDIR, module),
                                      fmt::format("{}/{}", dir, module)};
    for (const auto& c : candidates)
        if (access(c.c_str(), R_OK) == 0) return c;
    throw Failure(kExitError, fmt::format("this command needs {}, which is not installed (looked in {}/../{}/gometrics "
                                          "and {})",
                                          module, dir, GOMETRICS_LIBDIR, dir));
}

void* open_module(const char* module) {
    static std::map<std::string, void*> opened;
    if (auto it = opened.find(module); it != opened.end()) return it->second;
    const std::string path = find_module(module);
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) throw Failure(kExitError, fmt::format("cannot load {}: {}", path, dlerror()));
    const auto* version = static_cast<const char*>(dlsym(handle, "gometrics_cli_module_version"));
    if (!version || std::strcmp(version, GOMETRICS_VERSION) != 0)
        throw Failure(kExitError, fmt::format("{} is version {}, the CLI {}: reinstall them together", path,
                                              version ? version : "unknown", GOMETRICS_VERSION));
    opened.emplace(module, handle);
    return handle;
}

}  // namespace

void* load_module_symbol(const char* module, const char* name) {
    void* handle = open_module(module);
    void* symbol = dlsym(handle, name);
    if (!symbol) throw Failure(kExitError, fmt::format("{} has no {}: reinstall it with the CLI", module, name));
    return symbol;
}

}  // namespace gometrics::cli
