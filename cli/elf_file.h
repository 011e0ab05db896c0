// ELF files for the profiles: a file's GNU build ID, and the load bias at
// which a process had one of its mappings.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "pprof.h"

struct Elf;  // libelf; kept out of this header

namespace gometrics::pprof {

// An ELF file opened read-only through libelf.
class ElfFile {
public:
    static Result<std::unique_ptr<ElfFile>> open(const std::string& path);
    ~ElfFile();
    ElfFile(const ElfFile&) = delete;
    ElfFile& operator=(const ElfFile&) = delete;

    Elf* elf() const noexcept { return elf_; }

private:
    ElfFile(int fd, Elf* elf) : fd_(fd), elf_(elf) {}
    static Result<std::unique_ptr<ElfFile>> fail(const std::string& path, const char* why);

    int fd_;
    Elf* elf_;
};

// The NT_GNU_BUILD_ID note as hex, or "" if the file has none or is unreadable
// (pprof then matches the binary by file name alone).
std::string read_build_id(const std::string& path);

// The load bias that puts `mapping` where the process had it: its file offset
// lies in an executable PT_LOAD segment whose p_vaddr the bias shifts.
Result<uint64_t> load_bias(const ElfFile& file, const Mapping& mapping);

}  // namespace gometrics::pprof
