#include "seccomp_filter.h"

#include <linux/audit.h>
#include <linux/seccomp.h>

#include <array>
#include <cstddef>
#include <unordered_set>
#include <vector>

namespace gometrics::cli {
namespace {

// A register or scratch word while the program runs: a number, or anything
// (it came from the arguments or the instruction pointer).
struct Value {
    bool known = true;
    uint32_t v = 0;

    bool operator==(const Value& o) const { return known == o.known && (!known || v == o.v); }
};

struct State {
    size_t pc = 0;
    Value a, x;
    std::array<Value, BPF_MEMWORDS> mem{};

    bool operator==(const State&) const = default;
};

struct StateHash {
    size_t operator()(const State& s) const {
        size_t h = s.pc;
        const auto mix = [&h](const Value& v) { h = (h ^ (v.known ? v.v : 0x9e3779b9u) ^ v.known) * 0x100000001b3ull; };
        mix(s.a);
        mix(s.x);
        for (const Value& m : s.mem) mix(m);
        return h;
    }
};

constexpr uint32_t kDataSize = sizeof(seccomp_data);
// A filter has at most 4096 instructions. Paths that rejoin with the same
// registers are followed once, so real filters take a few thousand steps; the
// bounds stop a crafted one (distinct numbers on every path) early, in time
// and memory (docs/cli.md has the figures).
constexpr long kMaxSteps = 1L << 20;
constexpr size_t kMaxJoinStates = 1u << 17;

Value load_word(uint32_t offset, uint32_t nr) {
    if (offset == offsetof(seccomp_data, nr)) return {true, nr};
    if (offset == offsetof(seccomp_data, arch)) return {true, AUDIT_ARCH_X86_64};
    return {false, 0};
}

std::optional<Value> alu(uint16_t op, Value a, Value b) {
    if (op == BPF_NEG) return a.known ? Value{true, -a.v} : Value{false, 0};
    if (!a.known || !b.known) return Value{false, 0};
    switch (op) {
        case BPF_ADD: return Value{true, a.v + b.v};
        case BPF_SUB: return Value{true, a.v - b.v};
        case BPF_MUL: return Value{true, a.v * b.v};
        case BPF_DIV: return b.v ? std::optional(Value{true, a.v / b.v}) : std::nullopt;
        case BPF_MOD: return b.v ? std::optional(Value{true, a.v % b.v}) : std::nullopt;
        case BPF_OR: return Value{true, a.v | b.v};
        case BPF_AND: return Value{true, a.v & b.v};
        case BPF_XOR: return Value{true, a.v ^ b.v};
        case BPF_LSH: return Value{true, a.v << (b.v & 31)};  // the kernel masks a shift by X
        case BPF_RSH: return Value{true, a.v >> (b.v & 31)};
        default: return std::nullopt;
    }
}

// Whether a conditional jump is taken: yes, no, or either (unknown operand).
std::optional<bool> taken(uint16_t op, Value a, Value b) {
    if (!a.known || !b.known) return std::nullopt;
    switch (op) {
        case BPF_JEQ: return a.v == b.v;
        case BPF_JGT: return a.v > b.v;
        case BPF_JGE: return a.v >= b.v;
        default: return (a.v & b.v) != 0;  // BPF_JSET
    }
}

class Explorer {
public:
    Explorer(std::span<const sock_filter> f, uint32_t nr) : f_(f), nr_(nr), joins_(joins_of(f)) {}

    // Follows every path from `s`; false when the program is malformed or
    // too branchy.
    bool run(State s) {
        for (;;) {
            if (++steps_ > kMaxSteps || s.pc >= f_.size()) return false;
            // Where paths meet, one that arrives as another did has nothing
            // new to find: without this, checks of argument after argument
            // that fall through to the same place double the paths each time.
            if (joins_[s.pc]) {
                if (seen_.size() >= kMaxJoinStates) return false;
                if (!seen_.insert(s).second) return true;
            }
            const sock_filter& in = f_[s.pc++];
            const uint16_t cls = BPF_CLASS(in.code);
            switch (cls) {
                case BPF_LD:
                case BPF_LDX: {
                    Value v;
                    const uint16_t mode = BPF_MODE(in.code);
                    if (BPF_SIZE(in.code) != BPF_W) return false;
                    if (mode == BPF_ABS && cls == BPF_LD) {
                        if (in.k % 4 || in.k >= kDataSize) return false;
                        v = load_word(in.k, nr_);
                    } else if (mode == BPF_IMM) {
                        v = {true, in.k};
                    } else if (mode == BPF_MEM) {
                        if (in.k >= BPF_MEMWORDS) return false;
                        v = s.mem[in.k];
                    } else if (mode == BPF_LEN) {
                        v = {true, kDataSize};
                    } else {
                        return false;
                    }
                    (cls == BPF_LD ? s.a : s.x) = v;
                    break;
                }
                case BPF_ST:
                case BPF_STX:
                    if (in.k >= BPF_MEMWORDS) return false;
                    s.mem[in.k] = cls == BPF_ST ? s.a : s.x;
                    break;
                case BPF_ALU: {
                    const Value b = BPF_SRC(in.code) == BPF_X ? s.x : Value{true, in.k};
                    const uint16_t op = BPF_OP(in.code);
                    if (BPF_SRC(in.code) == BPF_K &&
                        (((op == BPF_DIV || op == BPF_MOD) && in.k == 0) ||
                         ((op == BPF_LSH || op == BPF_RSH) && in.k >= 32)))
                        return false;  // refused by the kernel's checker
                    if (op == BPF_DIV || op == BPF_MOD) {
                        // Division by a zero X ends the program with 0, KILL_THREAD;
                        // an unknown X may be zero.
                        if (b.known && b.v == 0) return answer(SECCOMP_RET_KILL_THREAD);
                        if (!b.known) (void)answer(SECCOMP_RET_KILL_THREAD);
                    }
                    const auto r = alu(BPF_OP(in.code), s.a, b);
                    if (!r) return false;
                    s.a = *r;
                    break;
                }
                case BPF_JMP: {
                    if (BPF_OP(in.code) == BPF_JA) {
                        s.pc += in.k;
                        break;
                    }
                    if (BPF_OP(in.code) > BPF_JSET) return false;
                    const Value b = BPF_SRC(in.code) == BPF_X ? s.x : Value{true, in.k};
                    const auto t = in.jt == in.jf ? std::optional(true) : taken(BPF_OP(in.code), s.a, b);
                    if (t) {
                        s.pc += *t ? in.jt : in.jf;
                        break;
                    }
                    State other = s;
                    other.pc += in.jf;
                    s.pc += in.jt;
                    if (!run(other)) return false;
                    break;
                }
                case BPF_RET: {
                    const uint16_t src = BPF_RVAL(in.code);
                    if (src == BPF_K) return answer(in.k);
                    if (src == BPF_A && s.a.known) return answer(s.a.v);
                    if (src == BPF_A) return answer(SECCOMP_RET_KILL_PROCESS);  // could be anything
                    return false;
                }
                default:  // BPF_MISC
                    if (BPF_MISCOP(in.code) == BPF_TAX)
                        s.x = s.a;
                    else if (BPF_MISCOP(in.code) == BPF_TXA)
                        s.a = s.x;
                    else
                        return false;
            }
        }
    }

    std::optional<uint32_t> worst() const { return found_ ? std::optional(worst_) : std::nullopt; }

private:
    // Instructions with more than one way in.
    static std::vector<bool> joins_of(std::span<const sock_filter> f) {
        std::vector<uint8_t> ways(f.size());
        const auto into = [&](size_t to) {
            if (to < ways.size() && ways[to] < 2) ++ways[to];
        };
        for (size_t pc = 0; pc < f.size(); ++pc) {
            const sock_filter& in = f[pc];
            if (BPF_CLASS(in.code) == BPF_RET) continue;
            if (BPF_CLASS(in.code) != BPF_JMP) {
                into(pc + 1);
            } else if (BPF_OP(in.code) == BPF_JA) {
                into(pc + 1 + in.k);
            } else {
                into(pc + 1 + in.jt);
                if (in.jf != in.jt) into(pc + 1 + in.jf);
            }
        }
        std::vector<bool> joins(f.size());
        for (size_t pc = 0; pc < f.size(); ++pc) joins[pc] = ways[pc] > 1;
        return joins;
    }

    // One path's answer: a fatal one (is_fatal) outranks any that is not,
    // whatever the kernel's order (which puts ERRNO before USER_NOTIF, and
    // LOG before an action it does not know, a kill).
    bool answer(uint32_t ret) {
        const bool fatal = is_fatal(ret), worst_fatal = is_fatal(worst_);
        if (!found_ || fatal > worst_fatal || (fatal == worst_fatal && more_severe(ret, worst_))) worst_ = ret;
        found_ = true;
        return true;
    }

    std::span<const sock_filter> f_;
    uint32_t nr_;
    std::vector<bool> joins_;
    std::unordered_set<State, StateHash> seen_;
    long steps_ = 0;
    bool found_ = false;
    uint32_t worst_ = 0;
};

}  // namespace

bool more_severe(uint32_t a, uint32_t b) {
    // The kernel compares the actions as signed numbers: KILL_PROCESS
    // (0x80000000) first, ALLOW last.
    return static_cast<int32_t>(a & SECCOMP_RET_ACTION_FULL) < static_cast<int32_t>(b & SECCOMP_RET_ACTION_FULL);
}

bool is_fatal(uint32_t action) {
    switch (action & SECCOMP_RET_ACTION_FULL) {
        case SECCOMP_RET_ERRNO:
        case SECCOMP_RET_TRACE:
        case SECCOMP_RET_LOG:
        case SECCOMP_RET_ALLOW:
            return false;
        default:  // the kills, TRAP, USER_NOTIF (a supervisor that never answers
                  // leaves dlopen blocked under the loader's lock), and what the
                  // kernel does not know (a kill)
            return true;
    }
}

bool may_pass(uint32_t action) {
    const uint32_t a = action & SECCOMP_RET_ACTION_FULL;
    return a == SECCOMP_RET_ALLOW || a == SECCOMP_RET_LOG;
}

const char* action_name(uint32_t action) {
    switch (action & SECCOMP_RET_ACTION_FULL) {
        case SECCOMP_RET_KILL_PROCESS: return "KILL_PROCESS";
        case SECCOMP_RET_KILL_THREAD: return "KILL_THREAD";
        case SECCOMP_RET_TRAP: return "TRAP (SIGSYS)";
        case SECCOMP_RET_ERRNO: return "ERRNO";
        case SECCOMP_RET_USER_NOTIF: return "USER_NOTIF";
        case SECCOMP_RET_TRACE: return "TRACE";
        case SECCOMP_RET_LOG: return "LOG";
        case SECCOMP_RET_ALLOW: return "ALLOW";
        default: return "an unknown action (KILL_PROCESS)";
    }
}

std::optional<uint32_t> worst_action(std::span<const sock_filter> filter, uint32_t nr) {
    if (filter.empty()) return std::nullopt;
    Explorer e(filter, nr);
    if (!e.run(State{})) return std::nullopt;
    return e.worst();
}

}  // namespace gometrics::cli
