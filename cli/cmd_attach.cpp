// `attach PID` and `detach PID`: load the agent into a running process, or
// make it let go, without gdb.
//
// One thread of the target is stopped with PTRACE_SEIZE + PTRACE_INTERRUPT
// (the others run on). It must be at a safe point: not inside libc or the
// loader, where it may hold the allocator's or the loader's lock, unless it
// is blocked in a system call that holds none; and not in a signal handler
// that interrupted libc or the loader. Its registers are saved; it
// is made to call a function (libc's dlopen with the agent's path written
// on its stack below the red zone, or the agent's gometrics_attach or
// gometrics_detach) with a return address of 0, so that the return stops it
// with SIGSEGV; then its registers are put back and it is let go. A system
// call it was blocked in restarts: the saved registers say so to the
// kernel, and a call that would have returned EINTR only because of the
// stop is rewound to run again. x86-64 only.
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "commands.h"
#include "attach_syscalls.h"
#include "common.h"
#include "exec_agent.h"
#include "files.h"
#include "layout.h"
#include "seccomp_filter.h"

namespace gometrics::cli {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void fail(const std::string& line) { throw Failure(kExitError, line); }

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

int ptrace_scope() {
    const std::string s = read_text("/proc/sys/kernel/yama/ptrace_scope");
    return s.empty() ? -1 : std::atoi(s.c_str());
}

std::string permission_line(int pid, int err) {
    const int scope = ptrace_scope();
    if (scope == 3)
        return "kernel.yama.ptrace_scope is 3: no process may be traced on this machine (attach needs ptrace)";
    if (scope >= 1)
        return fmt::format("cannot trace {}: {} (kernel.yama.ptrace_scope is {}; attach needs CAP_SYS_PTRACE, e.g. "
                           "root, or ptrace_scope 0)",
                           pid, std::strerror(err), scope);
    return fmt::format("cannot trace {}: {} (another user's process? attach needs the same user, or "
                       "CAP_SYS_PTRACE as root has)",
                       pid,
                       std::strerror(err));
}

struct Mapping {
    uint64_t start, end, offset;
    bool exec;
    std::string path;
};

std::vector<Mapping> read_maps(int pid) {
    const std::string path = live_proc_dir(pid) + "/maps";
    std::ifstream in(path);
    if (!in && (errno == EACCES || errno == EPERM)) fail(permission_line(pid, errno));
    if (!in) fail(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    std::vector<Mapping> out;
    std::string line;
    while (std::getline(in, line)) {
        Mapping m{};
        char perms[8] = {};
        unsigned long long s, e, off;
        int path_at = 0;
        if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %*s %*s %n", &s, &e, perms, &off, &path_at) < 4) continue;
        m.start = s, m.end = e, m.offset = off, m.exec = perms[2] == 'x';
        if (path_at > 0 && static_cast<size_t>(path_at) < line.size()) m.path = line.substr(path_at);
        out.push_back(m);
    }
    return out;
}

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool is_libc(const std::string& p) { return ends_with(p, "/libc.so.6"); }
bool is_loader(const std::string& p) { return p.find("/ld-linux") != std::string::npos; }

// The load address of the object mapped from `path` (its mapping at file
// offset 0), or 0.
uint64_t base_of(const std::vector<Mapping>& maps, const std::string& path) {
    for (const Mapping& m : maps)
        if (m.path == path && m.offset == 0) return m.start;
    return 0;
}

// An ELF file read in pieces (a Go binary or python3 is megabytes: only the
// headers and tables needed are read).
class ElfReader {
public:
    // The path comes from the target's maps: a regular file, never a FIFO
    // planted under that name.
    explicit ElfReader(const std::string& path) : fd_(sys::open_regular(path.c_str(), O_RDONLY)) {
        ok_ = fd_ >= 0 && read(0, &eh_, sizeof eh_) && std::memcmp(eh_.e_ident, ELFMAG, SELFMAG) == 0 &&
              eh_.e_ident[EI_CLASS] == ELFCLASS64 && eh_.e_shentsize == sizeof(Elf64_Shdr) && eh_.e_shnum < 4096;
        if (ok_) {
            sh_.resize(eh_.e_shnum);
            ok_ = read(eh_.e_shoff, sh_.data(), sh_.size() * sizeof(Elf64_Shdr));
        }
    }
    ~ElfReader() {
        if (fd_ >= 0) close(fd_);
    }
    ElfReader(const ElfReader&) = delete;
    ElfReader& operator=(const ElfReader&) = delete;

    bool ok() const { return ok_; }
    const std::vector<Elf64_Shdr>& sections() const { return sh_; }
    const Elf64_Ehdr& header() const { return eh_; }
    bool read(uint64_t at, void* out, size_t n) const {
        return pread(fd_, out, n, static_cast<off_t>(at)) == static_cast<ssize_t>(n);
    }
    std::string section(const Elf64_Shdr& s, size_t limit = size_t{64} << 20) const {
        std::string out(std::min<uint64_t>(s.sh_size, limit), '\0');
        return read(s.sh_offset, out.data(), out.size()) ? out : std::string();
    }

private:
    int fd_;
    bool ok_ = false;
    Elf64_Ehdr eh_{};
    std::vector<Elf64_Shdr> sh_;
};

// A defined function's (or, with STT_OBJECT, variable's) address in an ELF
// file's dynamic symbol table (relative to its load address), or 0.
uint64_t dynamic_symbol(const std::string& file, const char* name, unsigned type = STT_FUNC) {
    ElfReader elf(file);
    if (!elf.ok()) return 0;
    for (const Elf64_Shdr& sh : elf.sections()) {
        if (sh.sh_type != SHT_DYNSYM || sh.sh_link >= elf.sections().size()) continue;
        const std::string syms = elf.section(sh), str = elf.section(elf.sections()[sh.sh_link]);
        const auto* sym = reinterpret_cast<const Elf64_Sym*>(syms.data());
        for (size_t k = 0; k < syms.size() / sizeof(Elf64_Sym); ++k) {
            if (sym[k].st_shndx == SHN_UNDEF || !sym[k].st_value || sym[k].st_name >= str.size()) continue;
            if (ELF64_ST_TYPE(sym[k].st_info) != type) continue;
            if (std::strcmp(str.c_str() + sym[k].st_name, name) == 0) return sym[k].st_value;
        }
    }
    return 0;
}

// Whether an ELF file has a section of that name (a Go binary's .go.buildinfo).
bool has_section(const std::string& file, const char* wanted) {
    ElfReader elf(file);
    if (!elf.ok() || elf.header().e_shstrndx >= elf.sections().size()) return false;
    const std::string names = elf.section(elf.sections()[elf.header().e_shstrndx]);
    for (const Elf64_Shdr& sh : elf.sections())
        if (sh.sh_name < names.size() && std::strcmp(names.c_str() + sh.sh_name, wanted) == 0) return true;
    return false;
}

// The target's file as seen from here (it may live in another mount namespace).
std::string in_target(int pid, const std::string& path) { return live_proc_dir(pid) + "/root" + path; }

// What the segment of pid says: absent, attached, or preloaded.
enum class Segment { kNone, kAttached, kPreloaded };

Segment segment_of(int pid) {
    const std::string path = segment_path(pid);
    const int fd = sys::open_regular(path.c_str(), O_RDONLY);
    if (fd < 0) return Segment::kNone;
    layout::SegmentHeader h{};
    const ssize_t n = pread(fd, &h, sizeof h, 0);
    close(fd);
    if (n != static_cast<ssize_t>(sizeof h) || h.magic != layout::kMagic || h.pid != pid) return Segment::kNone;
    if (h.state & layout::kStateExited) return Segment::kNone;
    // Left by an earlier process with the same pid (killed before it could
    // remove it): the process does not map it. An agent maps its segment
    // before it marks it ready, and keeps it mapped after a detach.
    if (!maps_file(pid, path).value_or(true)) return Segment::kNone;
    return (h.state & layout::kStateAttached) ? Segment::kAttached : Segment::kPreloaded;
}

long status_field(const std::string& status, const char* field) {
    const size_t at = status.find(std::string("\n") + field + ":");
    if (at == std::string::npos) return -1;
    return std::strtol(status.c_str() + at + std::strlen(field) + 2, nullptr, 10);
}

uint64_t status_mask(const std::string& status, const char* field) {
    const size_t at = status.find(std::string("\n") + field + ":");
    if (at == std::string::npos) return 0;
    return std::strtoull(status.c_str() + at + std::strlen(field) + 2, nullptr, 16);
}

std::vector<int> threads_of(int pid) {
    std::vector<int> tids;
    // The main thread first (most often blocked in a loop's wait), unless it
    // has ended (pthread_exit): then it cannot be stopped.
    if (live_thread(pid) == pid) tids.push_back(pid);
    const std::string dir = fmt::format("/proc/{}/task", pid);
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d)) {
            const int tid = std::atoi(e->d_name);
            if (tid > 0 && tid != pid) tids.push_back(tid);
        }
        closedir(d);
    }
    return tids;
}

// System calls that hold no lock of libc's or the loader's while blocked:
// a thread in one may be borrowed (the call restarts afterwards).
bool quiet_syscall(long nr, const user_regs_struct& r) {
    switch (nr) {
        case 0: case 1: case 7: case 17: case 18: case 19: case 20: case 23: case 34: case 35:
        case 42: case 43: case 44: case 45: case 46: case 47: case 61: case 128: case 130: case 230:
        case 232: case 247: case 270: case 271: case 281: case 288: case 441:
            return true;
        case 202:  // futex: a wait, for whatever it waits on (the waiter holds nothing it asked for)
            return (r.rsi & 127) == 0 || (r.rsi & 127) == 9;
        default:
            return false;
    }
}

struct Ranges {
    std::vector<std::pair<uint64_t, uint64_t>> risky;  // libc, the loader, the agent: code that may hold their locks
    bool contains(uint64_t ip) const {
        for (auto [s, e] : risky)
            if (ip >= s && ip < e) return true;
        return false;
    }
};

Ranges risky_code(const std::vector<Mapping>& maps, const std::string& agent) {
    Ranges r;
    for (const Mapping& m : maps)
        if (m.exec && (is_libc(m.path) || is_loader(m.path) || m.path == agent)) r.risky.emplace_back(m.start, m.end);
    return r;
}

// A thread in a signal handler may have been interrupted inside malloc or
// dlopen, holding their lock or halfway through their state, whatever its
// own instruction pointer says: borrowing it to call dlopen, which
// allocates, then deadlocks on that lock (seen: a handler blocked in read()
// over an interrupted malloc). The kernel's frame for the handler lies on
// the stack above it: the handler's return address, libc's rt_sigreturn
// stub, then the saved context, whose rip is where the thread was
// interrupted. A frame of a handler that returned long ago may still lie
// above the stack pointer (in a deeper frame's uninitialised locals): a
// frame is live only if the thread now blocks its signal and the mask the
// frame saved did not (as while a handler without SA_NODEFER runs; one with
// it goes unseen, as does one with more than the bytes read of locals).
class SignalFrames {
public:
    explicit SignalFrames(const Ranges& risky) : risky_(risky) {}

    // Whether a handler frame within reach above rsp interrupted risky code.
    bool over_risky_code(int tid, uint64_t rsp) {
        constexpr size_t kPage = 4096, kPages = 64;  // 256 KiB of stack, read a page an element: the
                                                    // read stops at the end of the stack's mapping
        // Words from the return address: uc_flags, uc_link, uc_stack (3),
        // r8..rsp (16), then rip; uc_sigmask after the 32-word sigcontext;
        // then siginfo, si_signo first.
        constexpr size_t kRip = 22, kSavedMask = 38, kSigno = 39;
        words_.resize(kPages * kPage / 8);
        iovec local{words_.data(), kPages * kPage}, remote[kPages];
        const uint64_t from = rsp & ~uint64_t{7};
        for (size_t p = 0; p < kPages; ++p) {
            const uint64_t at = p ? (from & ~uint64_t{kPage - 1}) + p * kPage : from;
            const uint64_t to = (from & ~uint64_t{kPage - 1}) + (p + 1) * kPage;
            remote[p] = {reinterpret_cast<void*>(at), static_cast<size_t>(to - at)};
        }
        const ssize_t got = process_vm_readv(tid, &local, 1, remote, kPages, 0);
        const size_t n = got > 0 ? static_cast<size_t>(got) / 8 : 0;
        for (size_t i = 0; i + kSigno < n; ++i)
            if (risky_.contains(words_[i]) && is_restorer(tid, words_[i]) && risky_.contains(words_[i + kRip]) &&
                live(tid, words_[i + kSavedMask], static_cast<uint32_t>(words_[i + kSigno])))
                return true;
        return false;
    }

private:
    static bool live(int tid, uint64_t saved_mask, uint32_t signo) {
        if (signo == 0 || signo > 64) return false;
        const uint64_t bit = uint64_t{1} << (signo - 1);
        const uint64_t blocked = status_mask(read_text(fmt::format("/proc/{}/status", tid)), "SigBlk");
        return (blocked & bit) && !(saved_mask & bit);
    }

    // libc's rt_sigreturn stub, which sigaction makes every handler return
    // to: mov $15, %rax; syscall.
    bool is_restorer(int tid, uint64_t at) {
        if (at == restorer_) return true;
        if (restorer_) return false;
        for (uint64_t c : checked_)
            if (c == at) return false;
        if (checked_.size() < 4096) checked_.push_back(at);
        static constexpr unsigned char kStub[] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
        unsigned char code[sizeof kStub] = {};
        iovec local{code, sizeof code}, remote{reinterpret_cast<void*>(at), sizeof code};
        if (process_vm_readv(tid, &local, 1, &remote, 1, 0) != static_cast<ssize_t>(sizeof code) ||
            std::memcmp(code, kStub, sizeof kStub) != 0)
            return false;
        restorer_ = at;
        return true;
    }

    const Ranges& risky_;
    uint64_t restorer_ = 0;
    std::vector<uint64_t> checked_;  // addresses in libc that are not the stub
    std::vector<uint64_t> words_;
};

bool wait_stop(int tid, int& status, std::chrono::milliseconds limit) {
    const auto end = Clock::now() + limit;
    for (;;) {
        const pid_t w = waitpid(tid, &status, __WALL | WNOHANG);
        if (w == tid) return true;
        if (w < 0 && errno != EINTR) return false;
        if (Clock::now() > end) return false;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
}

// A thread of the target, stopped, with its registers as they were.
struct Stopped {
    int tid = 0;
    user_regs_struct saved{};
};

// Whether a signal the thread does not block waits for it.
bool signal_pending(int pid, int tid) {
    const std::string st = read_text(fmt::format("/proc/{}/task/{}/status", pid, tid));
    return ((status_mask(st, "SigPnd") | status_mask(st, "ShdPnd")) & ~status_mask(st, "SigBlk")) != 0;
}

// Puts the registers back and lets the thread go. A system call that would
// return EINTR only because we stopped it runs again instead (unless a
// signal of the program's own is pending, whose handler must see EINTR).
void release(int pid, const Stopped& s) {
    user_regs_struct r = s.saved;
    if (static_cast<long>(r.orig_rax) >= 0 && static_cast<long>(r.rax) == -EINTR) {
        if (!signal_pending(pid, s.tid)) {
            r.rax = r.orig_rax;
            r.rip -= 2;  // the syscall instruction again
        }
    }
    ptrace(PTRACE_SETREGS, s.tid, nullptr, &r);
    ptrace(PTRACE_DETACH, s.tid, nullptr, nullptr);
}

// Seizes thread tid of pid and brings it to an interrupt stop, its registers
// in s. kSeizeFailed: the seize itself failed (errno says why); kNotNow: it
// did not stop, ended, or a signal came first (handed on): try it again
// later. Fails the command when the main thread ended meanwhile: another
// thread's end is only that (a program starting and ending threads).
enum class Seized { kStopped, kSeizeFailed, kNotNow };
Seized seize_stopped(int pid, int tid, Stopped& s) {
    if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) return Seized::kSeizeFailed;
    int status = 0;
    bool waited = false;
    if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0 ||
        !(waited = wait_stop(tid, status, std::chrono::milliseconds(2000))) || !WIFSTOPPED(status)) {
        ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
        if (waited && (WIFEXITED(status) || WIFSIGNALED(status)) && tid == pid)
            fail(fmt::format("process {} exited", pid));
        return Seized::kNotNow;
    }
    if (status >> 16 != PTRACE_EVENT_STOP) {
        ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(WSTOPSIG(status))));
        return Seized::kNotNow;
    }
    s = Stopped{tid, {}};
    ptrace(PTRACE_GETREGS, tid, nullptr, &s.saved);
    return Seized::kStopped;
}

// Stops a thread at a safe point, trying each thread of the process in turn
// and letting them run a little between rounds, for at most `limit`; never
// thread `agent` (the agent's own: its futex wait looks quiet, but a detach
// run there would wait for that thread's end).
Stopped stop_safely(int pid, const Ranges& ranges, std::chrono::milliseconds limit, int agent) {
    const auto end = Clock::now() + limit;
    SignalFrames frames(ranges);
    for (int round = 0;; ++round) {
        for (int tid : threads_of(pid)) {
            if (tid == agent) continue;
            Stopped s;
            const Seized seized = seize_stopped(pid, tid, s);
            if (seized == Seized::kSeizeFailed && errno == EPERM && round == 0 && tid == pid)
                fail(permission_line(pid, errno));
            if (seized != Seized::kStopped) continue;  // an ended thread (ESRCH) among them
            const long nr = static_cast<long>(s.saved.orig_rax);
            const bool safe = nr >= 0 ? quiet_syscall(nr, s.saved) : !ranges.contains(s.saved.rip);
            if (safe && !frames.over_risky_code(tid, s.saved.rsp)) return s;
            release(pid, s);
        }
        if (Clock::now() > end)
            fail(fmt::format("no thread of {} reached a safe point in {} ms (each was inside libc or the loader, "
                             "or in a signal handler that interrupted them, maybe holding their locks); nothing was "
                             "changed, try again",
                             pid, limit.count()));
        std::this_thread::sleep_for(std::chrono::milliseconds(2 + round % 8));
    }
}

// Whether every filter lets restart_syscall through (nullptr: unknown).
bool restart_allowed(const std::vector<std::vector<sock_filter>>* filters) {
    if (!filters) return false;
    for (const auto& f : *filters) {
        const auto w = worst_action(f, SYS_restart_syscall);
        if (!w || !may_pass(*w)) return false;
    }
    return true;
}

// Lets a filtered thread go. A timed sleep the stop interrupted resumes
// through restart_syscall, which the filter may kill or fail: unless it is
// known to let that through, the sleep is made again from its start
// instead (a longer sleep, not a death). Not with a signal pending, whose
// handler must see the EINTR the kernel then gives.
void release_filtered(int pid, Stopped& s, const std::vector<std::vector<sock_filter>>* filters) {
    constexpr long kRestartBlock = 516;  // the kernel's ERESTART_RESTARTBLOCK
    if (static_cast<long>(s.saved.rax) == -kRestartBlock && static_cast<long>(s.saved.orig_rax) >= 0 &&
        !restart_allowed(filters) && !signal_pending(pid, s.tid)) {
        s.saved.rax = s.saved.orig_rax;
        s.saved.rip -= 2;  // the syscall instruction again
    }
    release(pid, s);
}

// A thread's seccomp filters, newest first. The thread is stopped to read
// them (the kernel's rule), and let go as it was.
std::vector<std::vector<sock_filter>> filters_of(int pid, int tid, const char* command) {
    for (int attempt = 0; attempt < 50; ++attempt) {
        Stopped s;
        const Seized seized = seize_stopped(pid, tid, s);
        if (seized == Seized::kSeizeFailed) {
            if (errno == ESRCH) return {};  // that thread just ended
            fail(permission_line(pid, errno));
        }
        if (seized == Seized::kNotNow) continue;
        std::vector<std::vector<sock_filter>> filters;
        int err = 0;
        for (long index = 0;; ++index) {
            const long n = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, index, nullptr);
            if (n < 0 && errno == ENOENT) break;
            std::vector<sock_filter> prog(n > 0 ? static_cast<size_t>(n) : 0);
            if (n <= 0 || ptrace(PTRACE_SECCOMP_GET_FILTER, tid, index, prog.data()) != n) {
                err = n == 0 ? ENODATA : errno;
                filters.clear();
                break;
            }
            filters.push_back(std::move(prog));
        }
        release_filtered(pid, s, err ? nullptr : &filters);
        if (err)
            fail(fmt::format("process {} runs under a seccomp filter that gometrics-cli cannot read ({}; reading "
                             "it needs CAP_SYS_ADMIN and no filter of one's own): a system call of the agent's "
                             "could kill the process, so {} refuses; nothing was changed",
                             pid, std::strerror(err), command));
        return filters;
    }
    fail(fmt::format("could not stop thread {} of process {} to read its seccomp filter; nothing was changed", tid,
                     pid));
}

// Refuses, before anything changes, a process that a seccomp filter would
// kill, send SIGSYS or hold for a supervisor at a system call that loading,
// running or detaching the agent makes (a filter that answers with an errno
// only fails the agent's call), or that does not let through outright one
// of the few calls where an errno is the program's. Every thread's filters
// count: the hooks run on all of them. A detach checks the shorter list of
// what detaching makes, whatever the program did since the attach.
void refuse_fatal_filters(int pid, const char* command, bool detaching) {
    struct Call {
        const char* name;
        uint32_t nr;
    };
#define GOMETRICS_CALL(name) Call{#name, SYS_##name},
    static constexpr Call kAttachCalls[] = {GOMETRICS_ATTACH_SYSCALLS(GOMETRICS_CALL)};
    static constexpr Call kAttachMustAllow[] = {GOMETRICS_ATTACH_MUST_ALLOW(GOMETRICS_CALL)};
    static constexpr Call kDetachCalls[] = {GOMETRICS_DETACH_SYSCALLS(GOMETRICS_CALL)};
    static constexpr Call kDetachMustAllow[] = {GOMETRICS_CALL(restart_syscall) GOMETRICS_CALL(futex)};
#undef GOMETRICS_CALL
    const std::span<const Call> calls = detaching ? std::span<const Call>(kDetachCalls) : kAttachCalls;
    const std::span<const Call> outright = detaching ? std::span<const Call>(kDetachMustAllow) : kAttachMustAllow;
    std::set<std::vector<uint64_t>> checked;
    for (int tid : threads_of(pid)) {
        const long mode = status_field(read_text(fmt::format("/proc/{}/task/{}/status", pid, tid)), "Seccomp");
        if (mode <= 0) continue;
        if (mode == 1)
            fail(fmt::format("process {} runs in seccomp's strict mode (read, write and exit only): {} refuses; "
                             "nothing was changed",
                             pid, command));
        for (const auto& filter : filters_of(pid, tid, command)) {
            std::vector<uint64_t> key;
            for (const sock_filter& in : filter)
                key.push_back(uint64_t{in.code} << 48 | uint64_t{in.jt} << 40 | uint64_t{in.jf} << 32 | in.k);
            if (!checked.insert(std::move(key)).second) continue;
            const auto check = [&](const Call& c, bool must_allow) {
                const auto worst = worst_action(filter, c.nr);
                if (!worst)
                    fail(fmt::format("process {}'s seccomp filter could not be evaluated ({} instructions): {} "
                                     "refuses; nothing was changed",
                                     pid, filter.size(), command));
                if (must_allow && !may_pass(*worst))
                    fail(fmt::format("process {}'s seccomp filter answers {} with {}, where {} needs it "
                                     "allowed: {} refuses; nothing was changed",
                                     pid, c.name, action_name(*worst), detaching ? "detaching" : "attaching",
                                     command));
                if (is_fatal(*worst))
                    fail(fmt::format("process {}'s seccomp filter answers {} with {}, and the agent makes that call: "
                                     "{} refuses; nothing was changed",
                                     pid, c.name, action_name(*worst), command));
            };
            for (const Call& c : outright) check(c, true);
            for (const Call& c : calls) check(c, false);
        }
    }
}

// Memory of the process of live thread tid (a main thread that has ended
// has none to reach).
bool write_memory(int tid, uint64_t at, const void* data, size_t n) {
    iovec local{const_cast<void*>(data), n}, remote{reinterpret_cast<void*>(at), n};
    return process_vm_writev(tid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(n);
}

std::string read_string(int tid, uint64_t at) {
    char buf[512] = {};
    iovec local{buf, sizeof buf - 1}, remote{reinterpret_cast<void*>(at), sizeof buf - 1};
    if (process_vm_readv(tid, &local, 1, &remote, 1, 0) <= 0) return "";
    return buf;
}

// Makes the stopped thread call fn(a0, a1, more...) (a0 is the address of
// `text` on its stack when text is not empty) and returns what fn returned;
// the thread stays stopped.
uint64_t call(int pid, const Stopped& s, uint64_t fn, const std::string& text, uint64_t a0, uint64_t a1,
              std::array<uint64_t, 4> more = {}) {
    user_regs_struct r = s.saved;
    uint64_t sp = (s.saved.rsp - 128 - 256) & ~uint64_t{15};  // below the red zone, with room
    if (!text.empty()) {
        sp = (sp - text.size() - 1) & ~uint64_t{15};
        if (!write_memory(s.tid, sp, text.c_str(), text.size() + 1))
            fail(fmt::format("cannot write into {}'s stack", pid));
        a0 = sp;
        sp -= 64;
    }
    sp -= 8;  // as if a call pushed the return address: rsp + 8 is 16-aligned at entry
    const uint64_t zero = 0;
    if (!write_memory(s.tid, sp, &zero, sizeof zero)) fail(fmt::format("cannot write into {}'s stack", pid));
    r.rsp = sp;
    r.rip = fn;
    r.rdi = a0;
    r.rsi = a1;
    r.rdx = more[0];
    r.rcx = more[1];
    r.r8 = more[2];
    r.r9 = more[3];
    r.rax = 0;
    r.orig_rax = static_cast<unsigned long long>(-1);  // not in a system call: nothing to restart on the way
    r.eflags &= ~uint64_t{0x400};                      // direction flag clear, as the ABI wants at a call
    if (ptrace(PTRACE_SETREGS, s.tid, nullptr, &r) != 0) fail(fmt::format("cannot set {}'s registers", pid));
    int sig = 0;
    const auto end = Clock::now() + std::chrono::seconds(30);
    for (;;) {
        ptrace(PTRACE_CONT, s.tid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig)));
        int status = 0;
        sig = 0;
        if (!wait_stop(s.tid, status, std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()))) {
            // Still inside the call: it cannot be taken back now.
            fail(fmt::format("the call into {} did not return in 30 s; thread {} is left in it", pid, s.tid));
        }
        if (WIFEXITED(status) || WIFSIGNALED(status)) fail(fmt::format("process {} exited during the call", pid));
        if (!WIFSTOPPED(status)) continue;
        if (status >> 16 == PTRACE_EVENT_STOP) continue;  // a group stop: go on
        if (WSTOPSIG(status) == SIGSEGV) {
            user_regs_struct now{};
            ptrace(PTRACE_GETREGS, s.tid, nullptr, &now);
            if (now.rip == 0) return now.rax;
            release(pid, s);
            fail(fmt::format("the call crashed in {} at {:#x}; registers restored", pid, now.rip));
        }
        sig = WSTOPSIG(status);  // the program's signal: its handler runs, then the call goes on
    }
}

struct Target {
    int pid;
    std::vector<Mapping> maps;
    std::string agent;         // the agent's path, as the target maps it (or will)
    uint64_t agent_base = 0;   // nonzero: the agent is loaded
    std::string agent_mapped;  // its path in the target's maps
};

Target inspect(int pid, bool need_libc) {
    if (pid <= 0) throw Failure(kExitUsage, fmt::format("{} is not a process id", pid));
    if (access(fmt::format("/proc/{}", pid).c_str(), F_OK) != 0) fail(fmt::format("no process {}", pid));
    if (pid == getpid()) fail("cannot attach to gometrics-cli itself");
    const std::string status = read_text(fmt::format("/proc/{}/status", pid));
    if (const long tracer = status_field(status, "TracerPid"); tracer > 0)
        fail(fmt::format("process {} is already traced by process {} (a debugger?); nothing was changed", pid, tracer));
    Target t{pid, read_maps(pid), {}, 0, {}};
    for (const Mapping& m : t.maps)
        if (ends_with(m.path, "/libgometrics.so") && m.offset == 0) {
            t.agent_base = m.start;
            t.agent_mapped = m.path;
        }
    if (need_libc) {
        bool libc = false;
        for (const Mapping& m : t.maps) libc = libc || is_libc(m.path);
        const bool go = has_section(fmt::format("/proc/{}/exe", pid), ".go.buildinfo");
        if (!libc) {
            char exe[PATH_MAX] = {};
            (void)!readlink(fmt::format("/proc/{}/exe", pid).c_str(), exe, sizeof exe - 1);
            if (go)
                fail(fmt::format("process {} ({}) is a Go program without libc: attach needs glibc's dlopen", pid,
                                 exe));
            fail(fmt::format("process {} ({}) has no libc.so.6 (statically linked?): attach needs glibc's dlopen", pid,
                             exe));
        }
        if (go)
            fail(fmt::format("process {} is a Go program: its runtime owns its threads and signals; attach refuses",
                             pid));
    }
    return t;
}

uint64_t symbol_in(const Target& t, const std::string& path, const char* name) {
    const uint64_t base = base_of(t.maps, path);
    const uint64_t off = base ? dynamic_symbol(in_target(t.pid, path), name) : 0;
    if (!off) fail(fmt::format("cannot find {} in {} of process {}", name, path, t.pid));
    return base + off;
}

std::string libc_path(const Target& t) {
    for (const Mapping& m : t.maps)
        if (is_libc(m.path)) return m.path;
    return {};
}

// The agent's publisher thread in t, as it says (0: none, or an agent too
// old to say).
int agent_thread(const Target& t) {
    const uint64_t base = t.agent_base ? base_of(t.maps, t.agent_mapped) : 0;
    const uint64_t off = base ? dynamic_symbol(in_target(t.pid, t.agent_mapped), "gometrics_publisher_tid", STT_OBJECT)
                              : 0;
    int tid = 0;
    iovec local{&tid, sizeof tid}, remote{reinterpret_cast<void*>(base + off), sizeof tid};
    if (!off || process_vm_readv(live_thread(t.pid), &local, 1, &remote, 1, 0) != static_cast<ssize_t>(sizeof tid))
        return 0;
    return tid;
}

// Runs f(stopped thread) with a thread of the target stopped at a safe
// point, and releases the thread whatever happens.
template <class F>
uint64_t with_stopped(const Target& t, F&& f) {
    // Ctrl-C while the thread runs the call would detach it (the kernel lets
    // go of a dead tracer's tracees) with nobody to catch its return to 0:
    // the terminal's signals wait until it is released.
    struct Held {
        sigset_t old;
        Held() {
            sigset_t s;
            sigemptyset(&s);
            for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP}) sigaddset(&s, sig);
            sigprocmask(SIG_BLOCK, &s, &old);
        }
        ~Held() { sigprocmask(SIG_SETMASK, &old, nullptr); }
    } held;
    const Ranges ranges = risky_code(t.maps, t.agent_mapped);
    const Stopped s = stop_safely(t.pid, ranges, std::chrono::milliseconds(3000), agent_thread(t));
    uint64_t rv = 0;
    try {
        rv = f(s);
    } catch (...) {
        release(t.pid, s);
        throw;
    }
    release(t.pid, s);
    return rv;
}

// Calls `fn` in the target and returns its result; the thread is released.
uint64_t call_in(const Target& t, uint64_t fn) {
    return with_stopped(t, [&](const Stopped& s) { return call(t.pid, s, fn, "", 0, 0); });
}

// Under mlockall(MCL_FUTURE) and a finite RLIMIT_MEMLOCK, every page loaded
// or mapped for the agent would be taken from what the program may lock,
// and its own mappings would fail for it. Seen, not guessed, before
// anything loads: the stopped thread maps a page, and the kernel's count of
// locked memory says whether it was charged. Asked only of a process that
// has locked memory and may not lock without limit.
bool locks_all_it_maps(const Target& t, const Stopped& s) {
    const auto locked = [&] {
        return status_field(read_text(fmt::format("/proc/{}/status", t.pid)), "VmLck");
    };
    const std::string status = read_text(fmt::format("/proc/{}/status", t.pid));
    if (status_field(status, "VmLck") <= 0 || (status_mask(status, "CapEff") >> 14 & 1)) return false;  // CAP_IPC_LOCK
    const std::string limits = read_text(fmt::format("/proc/{}/limits", t.pid));
    const size_t at = limits.find("Max locked memory");
    if (at == std::string::npos || limits.compare(at + 26, 9, "unlimited") == 0) return false;
    const std::string libc = libc_path(t);
    const long before = locked();
    const uint64_t page = call(t.pid, s, symbol_in(t, libc, "mmap"), "", 0, 4096, {PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, static_cast<uint64_t>(-1), 0});
    if (page == reinterpret_cast<uint64_t>(MAP_FAILED)) return true;  // locked and out of room already
    const long after = locked();
    call(t.pid, s, symbol_in(t, libc, "munmap"), "", page, 4096);
    return after > before;
}

// Loads the agent into the target with libc's dlopen; "" or dlerror's text.
std::string load_agent(const Target& t) {
    std::string error;
    with_stopped(t, [&](const Stopped& s) -> uint64_t {
        if (locks_all_it_maps(t, s))
            fail(fmt::format("process {} locks its memory (mlockall) within RLIMIT_MEMLOCK: every page of the "
                             "agent's would be taken from what it may lock; attach refuses, nothing was changed",
                             t.pid));
        if (call(t.pid, s, symbol_in(t, libc_path(t), "dlopen"), t.agent, 0, RTLD_NOW) != 0) return 0;
        const uint64_t msg = call(t.pid, s, symbol_in(t, libc_path(t), "dlerror"), "", 0, 0);
        error = msg ? read_string(s.tid, msg) : "unknown error";
        return 0;
    });
    return error;
}

// The agent makes its segment before the call into it returns. Without one
// it counts nothing: it stayed out (and says why when asked), or the
// segment could not be made (its line on the process's stderr says why).
void check_published(const Target& loaded) {
    const int pid = loaded.pid;
    if (segment_of(pid) == Segment::kAttached) return;
    const Target t = loaded.agent_base ? loaded : inspect(pid, false);
    const uint64_t why = t.agent_base
                             ? call_in(t, symbol_in(t, t.agent_mapped, "gometrics_attach_refusal"))
                             : 0;
    if (why)
        fail(fmt::format("the agent in process {} stays out: {}; nothing is counted", pid,
                         read_string(live_thread(pid), why)));
    fail(fmt::format("the agent in process {} could not create its segment in /dev/shm (the process's stderr "
                     "says why): nothing is counted; run attach again once that is mended",
                     pid));
}

// A segment whose agent stopped but could not remove it (a seccomp filter
// that fails unlink, say): removed from here, where nothing forbids it.
void remove_left_segment(int pid) {
    const std::string path = fmt::format("/dev/shm/{}{}", layout::kShmPrefix, pid);
    if (segment_of(pid) == Segment::kNone && access(path.c_str(), F_OK) == 0 && unlink(path.c_str()) != 0)
        fail(fmt::format("process {}'s agent stopped, but its segment {} stays: {}", pid, path, std::strerror(errno)));
}

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

int attach(int pid) {
    const auto t0 = Clock::now();
    Target t = inspect(pid, true);
    switch (segment_of(pid)) {
        case Segment::kAttached:
            fmt::print("process {} is already attached: nothing changed\n", pid);
            return kExitOk;
        case Segment::kPreloaded:
            fmt::print("process {} runs the agent already (LD_PRELOAD): nothing changed\n", pid);
            return kExitOk;
        case Segment::kNone:
            break;
    }
    refuse_fatal_filters(pid, "attach", false);
    remove_left_segment(pid);
    if (t.agent_base) {
        // Loaded before and detached since: start counting again.
        const auto rc = static_cast<int>(call_in(t, symbol_in(t, t.agent_mapped, "gometrics_attach")));
        if (rc == -1)
            fail(fmt::format("the agent in {} refused to attach again (preloaded, or its publisher still runs)",
                             pid));
        if (rc == -3)
            fail(fmt::format("the agent in process {} stayed out when it was loaded, and cannot start later: "
                             "only a new process can be attached",
                             pid));
    } else {
        char real[PATH_MAX];
        const std::string agent = find_agent();
        if (!realpath(agent.c_str(), real)) fail(fmt::format("cannot resolve {}: {}", agent, std::strerror(errno)));
        t.agent = real;
        if (const std::string error = load_agent(t); !error.empty())
            fail(fmt::format("dlopen of {} failed in process {}: {}", t.agent, pid, error));
    }
    check_published(t);
    fmt::print("attached to process {} in {:.1f} ms\n", pid, ms_since(t0));
    return kExitOk;
}

int detach(int pid) {
    const auto t0 = Clock::now();
    Target t = inspect(pid, false);
    if (!t.agent_base) fail(fmt::format("the agent is not loaded in process {}: nothing to detach", pid));
    if (segment_of(pid) == Segment::kPreloaded)
        fail(fmt::format("process {} runs the agent preloaded (LD_PRELOAD): detach applies to attached processes",
                         pid));
    refuse_fatal_filters(pid, "detach", true);
    const auto rc = static_cast<int>(call_in(t, symbol_in(t, t.agent_mapped, "gometrics_detach")));
    if (rc < 0) fail(fmt::format("process {} runs the agent preloaded: detach applies to attached processes", pid));
    if (rc == 0) {
        fmt::print("process {} is not attached: nothing changed\n", pid);
        return kExitOk;
    }
    if (segment_of(pid) != Segment::kNone)
        fail(fmt::format("process {} stopped counting, but its publisher thread did not stop: the segment stays", pid));
    remove_left_segment(pid);
    fmt::print("detached from process {} in {:.1f} ms\n", pid, ms_since(t0));
    return kExitOk;
}

}  // namespace

void add_attach_commands(CLI::App& app, int& status) {
    static int attach_pid = 0, detach_pid = 0;
    auto* a = app.add_subcommand("attach", "Load the agent into a running process (ptrace, no restart) and publish");
    a->add_option("pid", attach_pid, "Process id")->required()->transform(kDecimal);
    a->callback([&status] { status = attach(attach_pid); });
    auto* d =
        app.add_subcommand("detach", "Stop counting in an attached process, restore its calls, remove its segment");
    d->add_option("pid", detach_pid, "Process id")->required()->transform(kDecimal);
    d->callback([&status] { status = detach(detach_pid); });
}

}  // namespace gometrics::cli
