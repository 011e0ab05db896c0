// GOT redirection; see got.h.
//
// Each object's relocation tables name, for every call it makes into
// another object, the GOT word the call goes through. Writing another
// address into that word redirects the calls, whatever the object's
// binding mode: a lazily bound word still holding its PLT stub is replaced
// too (and gets the stub back at restore, so lazy binding resumes). With
// full RELRO the words are read-only once the loader finished: the page is
// made writable for the store and read-only again.
//
// Everything runs inside dl_iterate_phdr's callback, which holds the
// loader's list lock: no object can be unmapped meanwhile, and nothing here
// takes a lock of the loader's (no dladdr, no dlsym) or allocates.
#include "got.h"

#include <elf.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace gometrics::agent::got {
namespace {

// What was in each redirected word before. A fixed table in an anonymous
// mapping: a process with thousands of objects still fits.
struct Record {
    uintptr_t slot;
    uintptr_t original;
};
constexpr size_t kMaxRecords = 1 << 16;
constinit Record* g_records = nullptr;
constinit size_t g_count = 0;

bool ensure_records() noexcept {
    if (g_records) return true;
    void* m = mmap(nullptr, kMaxRecords * sizeof(Record), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return false;
    g_records = static_cast<Record*>(m);
    return true;
}

bool skipped(const char* name) noexcept {
    // The loader calls its own functions internally; the vDSO has no GOT of
    // interest.
    return std::strstr(name, "/ld-linux") || std::strstr(name, "ld-linux-x86-64.so") ||
           std::strstr(name, "linux-vdso") || std::strstr(name, "linux-gate");
}

struct Walk {
    const Redirect* table;
    size_t n;
    uintptr_t self;
    bool restore;
    bool unrelocated;
    bool libc;  // the object visited now is libc
};

// Everything one object's dynamic section says that matters here.
struct Object {
    uintptr_t base = 0, span = 0, relro_start = 0, relro_end = 0;
    const ElfW(Sym)* symtab = nullptr;
    const char* strtab = nullptr;
    size_t strsz = 0;
    const ElfW(Rela)* rel[2] = {nullptr, nullptr};  // DT_JMPREL, DT_RELA
    size_t rel_count[2] = {0, 0};
};

bool read_object(const dl_phdr_info* info, Object& o) noexcept {
    o.base = info->dlpi_addr;
    const ElfW(Dyn)* dyn = nullptr;
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type == PT_DYNAMIC) dyn = reinterpret_cast<const ElfW(Dyn)*>(o.base + ph.p_vaddr);
        if (ph.p_type == PT_LOAD && ph.p_vaddr + ph.p_memsz > o.span) o.span = ph.p_vaddr + ph.p_memsz;
        if (ph.p_type == PT_GNU_RELRO) {
            // What the loader protects: whole pages, the last partial one left out.
            o.relro_start = (o.base + ph.p_vaddr) & ~(page - 1);
            o.relro_end = (o.base + ph.p_vaddr + ph.p_memsz) & ~(page - 1);
        }
    }
    if (!dyn) return false;
    // The loader adjusts most addresses in a writable dynamic section by the
    // load address; an object whose section it could not write keeps them
    // relative.
    auto fix = [&](uintptr_t p) { return p && p < o.base ? p + o.base : p; };
    size_t jmprel_bytes = 0, rela_bytes = 0, relaent = sizeof(ElfW(Rela));
    uintptr_t jmprel = 0, rela = 0;
    bool rela_plt = true;
    for (const ElfW(Dyn)* d = dyn; d->d_tag != DT_NULL; ++d) {
        switch (d->d_tag) {
            case DT_SYMTAB: o.symtab = reinterpret_cast<const ElfW(Sym)*>(fix(d->d_un.d_ptr)); break;
            case DT_STRTAB: o.strtab = reinterpret_cast<const char*>(fix(d->d_un.d_ptr)); break;
            case DT_STRSZ: o.strsz = d->d_un.d_val; break;
            case DT_JMPREL: jmprel = fix(d->d_un.d_ptr); break;
            case DT_PLTRELSZ: jmprel_bytes = d->d_un.d_val; break;
            case DT_PLTREL: rela_plt = d->d_un.d_val == DT_RELA; break;
            case DT_RELA: rela = fix(d->d_un.d_ptr); break;
            case DT_RELASZ: rela_bytes = d->d_un.d_val; break;
            case DT_RELAENT: relaent = d->d_un.d_val; break;
        }
    }
    if (!o.symtab || !o.strtab || relaent != sizeof(ElfW(Rela)) || !rela_plt) return false;
    o.rel[0] = reinterpret_cast<const ElfW(Rela)*>(jmprel);
    o.rel_count[0] = jmprel ? jmprel_bytes / sizeof(ElfW(Rela)) : 0;
    o.rel[1] = reinterpret_cast<const ElfW(Rela)*>(rela);
    o.rel_count[1] = rela ? rela_bytes / sizeof(ElfW(Rela)) : 0;
    return true;
}

// The table entry a relocation names, or -1.
long match(const Walk& w, const Object& o, const ElfW(Rela)& r) noexcept {
    const auto type = ELF64_R_TYPE(r.r_info);
    if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) return -1;
    const ElfW(Sym)& sym = o.symtab[ELF64_R_SYM(r.r_info)];
    if (sym.st_name >= o.strsz) return -1;
    // An object's own definition (its own malloc) is its business, but
    // libc's own calls of its malloc family, which interposition reaches.
    // libc's entries of anything else stay: it calls them internally.
    const bool own = sym.st_shndx != SHN_UNDEF;
    if (own != w.libc) return -1;
    const char* name = o.strtab + sym.st_name;
    for (size_t i = 0; i < w.n; ++i)
        if (name[0] == w.table[i].name[0] && std::strcmp(name, w.table[i].name) == 0)
            return !w.libc || w.table[i].in_libc ? static_cast<long>(i) : -1;
    return -1;
}

// A word the loader has not written yet: zero, or a PLT stub's address
// before the load address was added.
bool unrelocated(const Object& o, uintptr_t value) noexcept { return value == 0 || (o.base && value < o.span); }

void store(const Object& o, uintptr_t slot, uintptr_t value) noexcept {
    auto* word = reinterpret_cast<uintptr_t*>(slot);
    if (slot >= o.relro_start && slot < o.relro_end) {
        const uintptr_t page = slot & ~(static_cast<uintptr_t>(sysconf(_SC_PAGESIZE)) - 1);
        const auto len = static_cast<size_t>(sysconf(_SC_PAGESIZE));
        if (mprotect(reinterpret_cast<void*>(page), len, PROT_READ | PROT_WRITE) != 0) return;
        __atomic_store_n(word, value, __ATOMIC_RELEASE);
        mprotect(reinterpret_cast<void*>(page), len, PROT_READ);
        return;
    }
    __atomic_store_n(word, value, __ATOMIC_RELEASE);  // one aligned store: a concurrent call sees old or new
}

uintptr_t recorded(uintptr_t slot) noexcept {
    for (size_t i = 0; i < g_count; ++i)
        if (g_records[i].slot == slot) return g_records[i].original;
    return 0;
}

int visit(dl_phdr_info* info, size_t, void* arg) {
    Walk& w = *static_cast<Walk*>(arg);
    const char* name = info->dlpi_name ? info->dlpi_name : "";
    if (info->dlpi_addr == w.self || skipped(name)) return 0;
    w.libc = std::strstr(name, "/libc.so.6") != nullptr;
    Object o;
    if (!read_object(info, o)) return 0;
    if (!w.restore) {
        // The whole object or nothing: one the loader is still relocating
        // (another thread's dlopen) waits for the next call.
        for (int t = 0; t < 2; ++t)
            for (size_t i = 0; i < o.rel_count[t]; ++i) {
                const ElfW(Rela)& r = o.rel[t][i];
                if (ELF64_R_TYPE(r.r_info) != R_X86_64_JUMP_SLOT && match(w, o, r) < 0) continue;
                const uintptr_t value =
                    __atomic_load_n(reinterpret_cast<uintptr_t*>(o.base + r.r_offset), __ATOMIC_RELAXED);
                // A weak function nobody defines stays 0 for good.
                if (!value && ELF64_ST_BIND(o.symtab[ELF64_R_SYM(r.r_info)].st_info) == STB_WEAK) continue;
                if (unrelocated(o, value)) {
                    w.unrelocated = true;
                    return 0;
                }
            }
    }
    for (int t = 0; t < 2; ++t)
        for (size_t i = 0; i < o.rel_count[t]; ++i) {
            const ElfW(Rela)& r = o.rel[t][i];
            const long k = match(w, o, r);
            if (k < 0) continue;
            const uintptr_t slot = o.base + r.r_offset;
            const uintptr_t value = __atomic_load_n(reinterpret_cast<uintptr_t*>(slot), __ATOMIC_RELAXED);
            const auto to = reinterpret_cast<uintptr_t>(w.table[k].to);
            if (w.restore) {
                if (value != to) continue;
                const uintptr_t original = recorded(slot);
                store(o, slot, original ? original : reinterpret_cast<uintptr_t>(w.table[k].fallback));
            } else {
                if (value == to || g_count == kMaxRecords) continue;
                g_records[g_count++] = {slot, value};
                store(o, slot, to);
            }
        }
    return 0;
}

}  // namespace

bool redirect(const Redirect* table, size_t n, uintptr_t self_base) noexcept {
    if (!ensure_records()) return true;
    Walk w{table, n, self_base, false, false, false};
    dl_iterate_phdr(visit, &w);
    return !w.unrelocated;
}

void restore(const Redirect* table, size_t n, uintptr_t self_base) noexcept {
    if (!g_records) return;
    Walk w{table, n, self_base, true, false, false};
    dl_iterate_phdr(visit, &w);
    g_count = 0;
}

size_t redirected() noexcept { return g_count; }

}  // namespace gometrics::agent::got
