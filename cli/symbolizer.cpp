// The libdwfl symbolizer: code addresses to functions, files and lines,
// inline chains included; see pprof.h.
#include <cstdlib>
#include <cstring>
#include <cxxabi.h>
#include <set>

#include <dwarf.h>
#include <elfutils/libdwfl.h>
#include <fmt/format.h>

#include "elf_file.h"
#include "pprof.h"

namespace gometrics::pprof {

namespace {

// dwfl_linux_proc_find_elf opens the files a live process maps ([vdso] from
// its memory; dwfl_report_elf opens its file itself).
// dwfl_standard_find_debuginfo finds separate debug info: /usr/lib/debug by
// build ID or .gnu_debuglink, and debuginfod servers if DEBUGINFOD_URLS is set.
const Dwfl_Callbacks kCallbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = nullptr,
    .debuginfo_path = nullptr,
};

bool is_mangled(std::string_view name) { return name.substr(0, 2) == "_Z"; }

std::string demangle(const std::string& name) {
    // Only Itanium-mangled names: __cxa_demangle also decodes type names, so
    // a C function called "i" would come back as "int".
    if (!is_mangled(name)) return name;
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status),
                                               &std::free);
    return status == 0 && out ? out.get() : name;
}

struct SourcePos {
    std::string file;
    int64_t line = 0;
};

Frame make_frame(const std::string& system_name, SourcePos pos) {
    return {demangle(system_name), system_name, std::move(pos.file), pos.line};
}

// The mangled name when DWARF has one: DW_AT_name lacks namespaces and
// classes. The _integrate lookups follow DW_AT_abstract_origin and
// DW_AT_specification to the declaration that carries it.
const char* linkage_name(Dwarf_Die* die) {
    Dwarf_Attribute attr;
    const char* name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
    return name != nullptr ? name : dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
}

// The ELF symbol at `pc` without a version suffix ("malloc@@GLIBC_2.2.5"),
// or "" if none.
std::string symbol_name(Dwfl_Module* module, uint64_t pc) {
    GElf_Off offset = 0;
    GElf_Sym symbol;
    const char* name = dwfl_module_addrinfo(module, pc, &offset, &symbol, nullptr, nullptr, nullptr);
    if (name == nullptr) return {};
    return std::string(name, std::strcspn(name, "@"));
}

// GCC gives C++ functions with internal linkage (static, anonymous
// namespace) no DW_AT_linkage_name, but for the function `pc` was compiled
// into, the ELF symbol still has the qualified, mangled name. Inlined ones
// keep their plain DW_AT_name.
std::string function_name(Dwfl_Module* module, uint64_t pc, Dwarf_Die* die) {
    if (const char* name = linkage_name(die)) return name;
    if (dwarf_tag(die) == DW_TAG_subprogram) {
        std::string symbol = symbol_name(module, pc);
        if (is_mangled(symbol)) return symbol;
    }
    const char* name = dwarf_diename(die);
    return name != nullptr ? name : "??";
}

SourcePos line_table_pos(Dwfl_Module* module, uint64_t pc) {
    Dwfl_Line* line = dwfl_module_getsrc(module, pc);
    int number = 0;
    const char* file = line ? dwfl_lineinfo(line, nullptr, &number, nullptr, nullptr, nullptr) : nullptr;
    return file ? SourcePos{file, number} : SourcePos{};
}

// Where the inlined instance `inlined` was called from, in compile unit `cu`.
SourcePos call_site_pos(Dwarf_Die* cu, Dwarf_Die* inlined) {
    SourcePos pos;
    Dwarf_Attribute attr;
    Dwarf_Word value = 0;
    Dwarf_Files* files = nullptr;
    if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_file, &attr), &value) == 0 &&
        dwarf_getsrcfiles(cu, &files, nullptr) == 0) {
        if (const char* file = dwarf_filesrc(files, value, nullptr, nullptr)) pos.file = file;
    }
    if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_line, &attr), &value) == 0)
        pos.line = static_cast<int64_t>(value);
    return pos;
}

// Frames from DWARF: the chain of inlined calls around `pc`, out to the
// function it was compiled into. dwarf_getscopes finds the innermost scope,
// but past an inlined instance it continues in the abstract definition;
// dwarf_getscopes_die from that scope gives the concrete chain instead.
std::vector<Frame> dwarf_frames(Dwfl_Module* module, uint64_t pc) {
    Dwarf_Addr bias = 0;
    Dwarf_Die* cu = dwfl_module_addrdie(module, pc, &bias);
    Dwarf_Die* raw = nullptr;
    if (cu == nullptr || dwarf_getscopes(cu, pc - bias, &raw) <= 0) return {};
    Dwarf_Die innermost = raw[0];
    std::free(raw);
    raw = nullptr;  // dwarf_getscopes_die leaves it alone when it fails
    const int count = dwarf_getscopes_die(&innermost, &raw);
    std::unique_ptr<Dwarf_Die, void (*)(void*)> scopes(raw, &std::free);

    // The innermost frame's line comes from the line table; each outer
    // frame's from the call site recorded on the inlined instance it holds.
    SourcePos pos = line_table_pos(module, pc);
    std::vector<Frame> frames;
    for (int i = 0; i < count; ++i) {
        Dwarf_Die* die = &scopes.get()[i];
        const int tag = dwarf_tag(die);
        if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram) continue;
        frames.push_back(make_frame(function_name(module, pc, die), pos));
        if (tag == DW_TAG_subprogram) break;
        pos = call_site_pos(cu, die);
    }
    return frames;
}

// A single frame from the ELF symbol table, for code without debug info.
// No line: outside any compile unit the line table only has a neighbour's.
std::vector<Frame> symtab_frames(Dwfl_Module* module, uint64_t pc) {
    std::string name = symbol_name(module, pc);
    if (name.empty()) return {};
    return {make_frame(name, {})};
}

std::vector<Frame> lookup(Dwfl* dwfl, uint64_t pc) {
    Dwfl_Module* module = dwfl_addrmodule(dwfl, pc);
    if (module == nullptr) return {};
    std::vector<Frame> frames = dwarf_frames(module, pc);
    return frames.empty() ? symtab_frames(module, pc) : frames;
}

std::string dwfl_error() { return dwfl_errmsg(-1); }

// Reports the file of `mapping` to libdwfl where the process had it loaded.
Status report_mapping(Dwfl* dwfl, const Mapping& mapping) {
    auto file = ElfFile::open(mapping.file);
    if (!file) return file.error();
    auto bias = load_bias(**file, mapping);
    if (!bias) return bias.error();
    // With add_p_vaddr, the base is the load bias (ET_EXEC ignores it).
    if (!dwfl_report_elf(dwfl, mapping.file.c_str(), mapping.file.c_str(), -1, *bias, true))
        return Error{fmt::format("cannot load {}: {}", mapping.file, dwfl_error())};
    return Ok{};
}

}  // namespace

void Symbolizer::DwflDeleter::operator()(Dwfl* dwfl) const noexcept { dwfl_end(dwfl); }

Symbolizer::Symbolizer(std::unique_ptr<Dwfl, DwflDeleter> dwfl) : dwfl_(std::move(dwfl)) {}

Symbolizer::~Symbolizer() = default;

Result<std::unique_ptr<Symbolizer>> Symbolizer::for_pid(int pid) {
    std::unique_ptr<Dwfl, DwflDeleter> dwfl(dwfl_begin(&kCallbacks));
    if (!dwfl) return Error{"cannot start libdwfl: " + dwfl_error()};
    // Positive results are errno values from reading /proc/PID/maps.
    const int rc = dwfl_linux_proc_report(dwfl.get(), pid);
    if (rc > 0) return Error{fmt::format("cannot read /proc/{}/maps: {}", pid, std::strerror(rc))};
    if (rc < 0 || dwfl_report_end(dwfl.get(), nullptr, nullptr) != 0)
        return Error{fmt::format("cannot list the modules of process {}: {}", pid, dwfl_error())};
    return std::unique_ptr<Symbolizer>(new Symbolizer(std::move(dwfl)));
}

Result<std::unique_ptr<Symbolizer>> Symbolizer::for_mappings(const std::vector<Mapping>& mappings) {
    std::unique_ptr<Dwfl, DwflDeleter> dwfl(dwfl_begin(&kCallbacks));
    if (!dwfl) return Error{"cannot start libdwfl: " + dwfl_error()};
    std::vector<std::string> warnings;
    std::set<std::string> reported;  // libdwfl wants each file once
    for (const Mapping& m : mappings) {
        if (!reported.insert(m.file).second) continue;
        if (auto added = report_mapping(dwfl.get(), m); !added) warnings.push_back(added.error().message);
    }
    if (dwfl_report_end(dwfl.get(), nullptr, nullptr) != 0) return Error{"libdwfl: " + dwfl_error()};
    if (warnings.size() == reported.size())
        return Error{warnings.empty() ? "no mappings to symbolize" : warnings.front()};
    auto symbolizer = std::unique_ptr<Symbolizer>(new Symbolizer(std::move(dwfl)));
    symbolizer->warnings_ = std::move(warnings);
    return symbolizer;
}

const std::vector<Frame>& Symbolizer::resolve(uint64_t pc) {
    auto [it, inserted] = cache_.try_emplace(pc);
    if (inserted) it->second = lookup(dwfl_.get(), pc);
    return it->second;
}

void symbolize(Profile& profile, Symbolizer& symbolizer) {
    for (const Sample& s : profile.samples) {
        for (uint64_t address : s.stack) {
            if (profile.symbols.count(address) != 0) continue;
            const std::vector<Frame>& frames = symbolizer.resolve(call_site(address));
            if (!frames.empty()) profile.symbols.emplace(address, frames);
        }
    }
}

}  // namespace gometrics::pprof
