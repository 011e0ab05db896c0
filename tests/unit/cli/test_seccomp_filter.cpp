// Unit tests for cli/seccomp_filter: what a filter answers for a system
// call, over every value of its arguments.
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>

#include <cstddef>
#include <vector>

#include <catch2/catch.hpp>

#include "seccomp_filter.h"

using namespace gometrics::cli;

namespace {

constexpr uint32_t kNr = offsetof(seccomp_data, nr);
constexpr uint32_t kArch = offsetof(seccomp_data, arch);
constexpr uint32_t kArg0 = offsetof(seccomp_data, args[0]);

sock_filter stmt(uint16_t code, uint32_t k) { return BPF_STMT(code, k); }
sock_filter jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) { return BPF_JUMP(code, k, jt, jf); }

// An allowlist as sandboxes write them: wrong architecture kills, then one
// comparison per allowed call, else `otherwise`.
std::vector<sock_filter> allowlist(std::vector<uint32_t> allowed, uint32_t otherwise) {
    std::vector<sock_filter> f{stmt(BPF_LD | BPF_W | BPF_ABS, kArch),
                               jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
                               stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
                               stmt(BPF_LD | BPF_W | BPF_ABS, kNr)};
    for (uint32_t nr : allowed) {
        f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1));
        f.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    }
    f.push_back(stmt(BPF_RET | BPF_K, otherwise));
    return f;
}

}  // namespace

TEST_CASE("an allowlist allows its calls and kills the others", "[seccomp]") {
    const auto f = allowlist({SYS_read, SYS_write, SYS_mmap}, SECCOMP_RET_KILL_PROCESS);
    CHECK(worst_action(f, SYS_write) == SECCOMP_RET_ALLOW);
    CHECK(worst_action(f, SYS_openat) == SECCOMP_RET_KILL_PROCESS);
    CHECK(is_fatal(*worst_action(f, SYS_openat)));
    CHECK_FALSE(is_fatal(*worst_action(f, SYS_mmap)));
}

TEST_CASE("an errno answer is not fatal, a trap is", "[seccomp]") {
    const auto eperm = allowlist({SYS_read}, SECCOMP_RET_ERRNO | EPERM);
    CHECK(worst_action(eperm, SYS_openat) == (SECCOMP_RET_ERRNO | EPERM));
    CHECK_FALSE(is_fatal(SECCOMP_RET_ERRNO | EPERM));
    CHECK(is_fatal(SECCOMP_RET_TRAP));
    CHECK(is_fatal(SECCOMP_RET_KILL_THREAD));
    CHECK(is_fatal(0x12340000));  // unknown to the kernel: it kills
}

TEST_CASE("a rule on an argument is followed both ways", "[seccomp]") {
    // clone: allowed unless a namespace flag is set (as container runtimes
    // write it), which answers EPERM; socket: allowed for AF_UNIX only,
    // else killed.
    const std::vector<sock_filter> f{
        stmt(BPF_LD | BPF_W | BPF_ABS, kNr),
        jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 4),
        stmt(BPF_LD | BPF_W | BPF_ABS, kArg0),
        jump(BPF_JMP | BPF_JSET | BPF_K, 0x7e020000, 0, 1),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, 3),
        stmt(BPF_LD | BPF_W | BPF_ABS, kArg0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 1, 0),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    CHECK(worst_action(f, SYS_clone) == (SECCOMP_RET_ERRNO | EPERM));
    CHECK(worst_action(f, SYS_socket) == SECCOMP_RET_KILL_PROCESS);
    CHECK(worst_action(f, SYS_read) == SECCOMP_RET_ALLOW);  // falls through to the last return
}

TEST_CASE("scratch memory, X and arithmetic carry numbers and unknowns", "[seccomp]") {
    const std::vector<sock_filter> f{
        stmt(BPF_LD | BPF_W | BPF_ABS, kNr),
        stmt(BPF_ST, 3),
        stmt(BPF_LD | BPF_W | BPF_ABS, kArg0),
        stmt(BPF_MISC | BPF_TAX, 0),
        stmt(BPF_LD | BPF_MEM, 3),
        stmt(BPF_ALU | BPF_ADD | BPF_K, 1),
        jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat + 1, 0, 1),  // openat, known through M[3]
        stmt(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
        stmt(BPF_MISC | BPF_TXA, 0),  // A = the argument: unknown
        jump(BPF_JMP | BPF_JGT | BPF_K, 10, 0, 1),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_LOG),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    CHECK(worst_action(f, SYS_openat) == SECCOMP_RET_TRAP);
    CHECK(worst_action(f, SYS_read) == SECCOMP_RET_LOG);
}

TEST_CASE("argument checks whose paths rejoin are followed once", "[seccomp]") {
    // ioctl with 40 request numbers refused, each compared as libseccomp
    // writes a 64-bit argument: high word, then low word, a mismatch of
    // either going on to the next rule. Each rule doubles the paths (2^40 of
    // them), all meeting again with nothing known of A.
    constexpr uint32_t kArg1Low = offsetof(seccomp_data, args[1]);
    constexpr uint32_t kArg1High = kArg1Low + 4;
    const auto rules = [&](uint32_t last) {
        std::vector<sock_filter> f{stmt(BPF_LD | BPF_W | BPF_ABS, kNr),
                                   jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 1, 0),
                                   stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
        for (uint32_t i = 0; i < 40; ++i) {
            f.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, kArg1High));
            f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 3));
            f.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, kArg1Low));
            f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, 0x5400 + i, 0, 1));
            f.push_back(stmt(BPF_RET | BPF_K, i == 39 ? last : SECCOMP_RET_ERRNO | EPERM));
        }
        f.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
        return f;
    };
    CHECK(worst_action(rules(SECCOMP_RET_ERRNO | EPERM), SYS_ioctl) == (SECCOMP_RET_ERRNO | EPERM));
    // The last rule is still reached.
    CHECK(worst_action(rules(SECCOMP_RET_KILL_PROCESS), SYS_ioctl) == SECCOMP_RET_KILL_PROCESS);
    CHECK(worst_action(rules(SECCOMP_RET_KILL_PROCESS), SYS_read) == SECCOMP_RET_ALLOW);
    // A jump with both ways the same is one way, known operand or not.
    const std::vector<sock_filter> same{stmt(BPF_LD | BPF_W | BPF_ABS, kArg0),
                                        jump(BPF_JMP | BPF_JGT | BPF_K, 7, 0, 0),
                                        stmt(BPF_RET | BPF_K, SECCOMP_RET_TRAP)};
    CHECK(worst_action(same, SYS_read) == SECCOMP_RET_TRAP);
}

TEST_CASE("a filter that makes every path distinct is given up on, not followed for ever", "[seccomp]") {
    // Each unknown bit of the argument adds a different number to M[0]: the
    // paths meet again with distinct registers, 2^40 of them.
    std::vector<sock_filter> f{stmt(BPF_LD | BPF_IMM, 0), stmt(BPF_ST, 0)};
    for (uint32_t i = 0; i < 40; ++i) {
        f.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, kArg0 + (i / 32) * 4));
        f.push_back(jump(BPF_JMP | BPF_JSET | BPF_K, 1u << (i % 32), 0, 3));
        f.push_back(stmt(BPF_LD | BPF_MEM, 0));
        f.push_back(stmt(BPF_ALU | BPF_ADD | BPF_K, 1u << (i % 32)));
        f.push_back(stmt(BPF_ST, 0));
    }
    f.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    CHECK_FALSE(worst_action(f, SYS_read));
}

TEST_CASE("a fatal answer on any path outranks one the kernel ranks higher", "[seccomp]") {
    // By the kernel's order ERRNO comes before USER_NOTIF, and LOG before an
    // action it does not know (which kills): either path ends the attach.
    const auto either = [](uint32_t a, uint32_t b) {
        return std::vector<sock_filter>{stmt(BPF_LD | BPF_W | BPF_ABS, kArg0),
                                        jump(BPF_JMP | BPF_JSET | BPF_K, 1, 0, 1), stmt(BPF_RET | BPF_K, a),
                                        stmt(BPF_RET | BPF_K, b)};
    };
    CHECK(worst_action(either(SECCOMP_RET_ERRNO | EPERM, SECCOMP_RET_USER_NOTIF), SYS_openat) ==
          SECCOMP_RET_USER_NOTIF);
    CHECK(worst_action(either(SECCOMP_RET_USER_NOTIF, SECCOMP_RET_ERRNO | EPERM), SYS_openat) ==
          SECCOMP_RET_USER_NOTIF);
    CHECK(worst_action(either(SECCOMP_RET_LOG, 0x7ffe0000), SYS_openat) == 0x7ffe0000);
    CHECK(is_fatal(0x7ffe0000));
    // Among the fatal, and among the others, the kernel's order.
    CHECK(worst_action(either(SECCOMP_RET_TRAP, SECCOMP_RET_KILL_PROCESS), SYS_openat) == SECCOMP_RET_KILL_PROCESS);
    CHECK(worst_action(either(SECCOMP_RET_LOG, SECCOMP_RET_ERRNO | 1), SYS_openat) == (SECCOMP_RET_ERRNO | 1));
}

TEST_CASE("a return of an unknown A counts as a kill", "[seccomp]") {
    const std::vector<sock_filter> f{stmt(BPF_LD | BPF_W | BPF_ABS, kArg0), stmt(BPF_RET | BPF_A, 0)};
    CHECK(worst_action(f, SYS_read) == SECCOMP_RET_KILL_PROCESS);
}

TEST_CASE("what the kernel would not load is not evaluated", "[seccomp]") {
    CHECK_FALSE(worst_action({}, SYS_read));
    const std::vector<sock_filter> past_end{stmt(BPF_LD | BPF_W | BPF_ABS, 64), stmt(BPF_RET | BPF_K, 0)};
    CHECK_FALSE(worst_action(past_end, SYS_read));
    const std::vector<sock_filter> no_return{stmt(BPF_LD | BPF_W | BPF_ABS, kNr)};
    CHECK_FALSE(worst_action(no_return, SYS_read));
    const std::vector<sock_filter> byte_load{stmt(BPF_LD | BPF_B | BPF_ABS, 0), stmt(BPF_RET | BPF_K, 0)};
    CHECK_FALSE(worst_action(byte_load, SYS_read));
}

TEST_CASE("the most severe of two answers is the kernel's", "[seccomp]") {
    CHECK(more_severe(SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD));
    CHECK(more_severe(SECCOMP_RET_KILL_THREAD, SECCOMP_RET_TRAP));
    CHECK(more_severe(SECCOMP_RET_ERRNO | 1, SECCOMP_RET_TRACE));
    CHECK_FALSE(more_severe(SECCOMP_RET_ALLOW, SECCOMP_RET_LOG));
}

TEST_CASE("division by an X that may be zero may kill; a shift by X is masked as the kernel does", "[seccomp]") {
    const std::vector<sock_filter> div{
        stmt(BPF_LD | BPF_W | BPF_ABS, kArg0),
        stmt(BPF_MISC | BPF_TAX, 0),
        stmt(BPF_LD | BPF_IMM, 1),
        stmt(BPF_ALU | BPF_DIV | BPF_X, 0),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    CHECK(worst_action(div, SYS_openat) == SECCOMP_RET_KILL_THREAD);
    // A = 1 << (32 & 31) = 1: the kill below is taken.
    const std::vector<sock_filter> shift{
        stmt(BPF_LDX | BPF_W | BPF_IMM, 32),
        stmt(BPF_LD | BPF_IMM, 1),
        stmt(BPF_ALU | BPF_LSH | BPF_X, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 1),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    CHECK(worst_action(shift, SYS_openat) == SECCOMP_RET_KILL_PROCESS);
    const std::vector<sock_filter> shift_k{stmt(BPF_ALU | BPF_LSH | BPF_K, 32), stmt(BPF_RET | BPF_K, 0)};
    CHECK_FALSE(worst_action(shift_k, SYS_read));
}

TEST_CASE("a supervisor's answer is not waited for; only allow and log pass as if unfiltered", "[seccomp]") {
    CHECK(is_fatal(SECCOMP_RET_USER_NOTIF));
    CHECK(may_pass(SECCOMP_RET_LOG));
    CHECK_FALSE(may_pass(SECCOMP_RET_ERRNO | EPERM));
    CHECK_FALSE(may_pass(SECCOMP_RET_TRACE));
}
