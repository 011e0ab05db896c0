// ELF build IDs and load biases; see elf_file.h.
#include "elf_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <elfutils/libdwelf.h>
#include <fmt/format.h>
#include <gelf.h>

#include "files.h"

namespace gometrics::pprof {

Result<std::unique_ptr<ElfFile>> ElfFile::open(const std::string& path) {
    // libelf refuses to work until told which ELF version the caller speaks.
    static const bool initialised = elf_version(EV_CURRENT) != EV_NONE;
    if (!initialised) return fail(path, elf_errmsg(-1));
    // The path is one a process mapped, or a report names: a regular file
    // only (a FIFO by that name would block the open), read rather than
    // mapped (a file truncated while mapped faults its reader with SIGBUS).
    const int fd = sys::open_regular(path.c_str(), O_RDONLY);
    if (fd < 0) return fail(path, sys::open_error(errno));
    auto file = std::unique_ptr<ElfFile>(new ElfFile(fd, elf_begin(fd, ELF_C_READ, nullptr)));
    if (file->elf_ == nullptr || elf_kind(file->elf_) != ELF_K_ELF) return fail(path, "not an ELF file");
    return file;
}

ElfFile::~ElfFile() {
    elf_end(elf_);
    ::close(fd_);
}

Result<std::unique_ptr<ElfFile>> ElfFile::fail(const std::string& path, const char* why) {
    return Error{fmt::format("cannot read ELF file {}: {}", path, why)};
}

std::string read_build_id(const std::string& path) {
    auto file = ElfFile::open(path);
    const void* id = nullptr;
    const ssize_t size = file ? dwelf_elf_gnu_build_id((*file)->elf(), &id) : 0;
    std::string hex;
    for (ssize_t i = 0; i < size; ++i) hex += fmt::format("{:02x}", static_cast<const unsigned char*>(id)[i]);
    return hex;
}

Result<uint64_t> load_bias(const ElfFile& file, const Mapping& mapping) {
    std::size_t count = 0;
    if (elf_getphdrnum(file.elf(), &count) != 0)
        return Error{fmt::format("cannot read program headers of {}", mapping.file)};
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    for (std::size_t i = 0; i < count; ++i) {
        GElf_Phdr ph;
        if (gelf_getphdr(file.elf(), static_cast<int>(i), &ph) == nullptr) continue;
        if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
        // The kernel maps whole pages, so the mapping may start before p_offset.
        if (mapping.offset < (ph.p_offset & ~(page - 1)) || mapping.offset >= ph.p_offset + ph.p_filesz) continue;
        return mapping.start - (ph.p_vaddr - ph.p_offset + mapping.offset);
    }
    return Error{
        fmt::format("{} has no executable segment at offset {:#x}", mapping.file, mapping.offset)};
}

}  // namespace gometrics::pprof
