// C++ allocation paths under the agent: new/delete, new[]/delete[], aligned
// new (operator new with align_val_t, served by aligned_alloc) and
// std::thread. Per iteration exactly five allocations and five frees, so a
// test can compare a run against its twin with zero iterations. A third
// argument adds every operator form (forms), refused allocations (refused)
// or one refused and then retried (retried).
//   cxx_app THREADS ITERATIONS [forms|refused|retried]
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace {

struct alignas(64) Line {
    uint64_t v[8];
};

// Keeps the compiler from eliding a new/delete pair.
void* volatile g_sink;

void require_aligned(const void* p, uintptr_t align) {
    if (reinterpret_cast<uintptr_t>(p) % align != 0) {
        std::fprintf(stderr, "misaligned %p for %zu\n", p, static_cast<size_t>(align));
        std::abort();
    }
}

uint64_t work(long iterations) {
    uint64_t sum = 0;
    for (long i = 0; i < iterations; ++i) {
        auto* line = new Line{};  // aligned new: alignof(Line) > __STDCPP_DEFAULT_NEW_ALIGNMENT__
        require_aligned(line, 64);
        line->v[7] = uint64_t(i);
        g_sink = line;
        sum += line->v[7];
        delete line;

        auto* ints = new int[16];
        g_sink = ints;
        ints[3] = 3;
        sum += uint64_t(ints[3]);
        delete[] ints;

        auto text = std::make_unique<std::string>(100, 'x');  // the string object and its buffer
        g_sink = text.get();
        sum += text->size();

        void* page = ::operator new(4096, std::align_val_t{4096});
        require_aligned(page, 4096);
        g_sink = page;
        ::operator delete(page, std::align_val_t{4096});
    }
    return sum;
}

void* kept(void* p) {
    g_sink = p;
    return p;
}

// Each of the twenty replaceable operators, 100 times: 1,200 allocations
// and as many frees.
void every_form() {
    const auto al = std::align_val_t{64};
    const auto& nt = std::nothrow;
    for (int i = 0; i < 100; ++i) {
        ::operator delete(kept(::operator new(24)));
        ::operator delete(kept(::operator new(24)), 24);
        ::operator delete[](kept(::operator new[](24)));
        ::operator delete[](kept(::operator new[](24)), 24);
        ::operator delete(kept(::operator new(24, al)), al);
        ::operator delete(kept(::operator new(24, al)), 24, al);
        ::operator delete[](kept(::operator new[](24, al)), al);
        ::operator delete[](kept(::operator new[](24, al)), 24, al);
        ::operator delete(kept(::operator new(24, nt)), nt);
        ::operator delete[](kept(::operator new[](24, nt)), nt);
        ::operator delete(kept(::operator new(24, al, nt)), al, nt);
        ::operator delete[](kept(::operator new[](24, al, nt)), al, nt);
    }
    std::printf("forms=20\n");
}

char* g_reserve;

void release_reserve() {
    delete[] g_reserve;
    g_reserve = nullptr;
    std::set_new_handler(nullptr);
}

// More memory than exists, from the throwing new (bad_alloc), the nothrow
// new (nullptr) and a throwing new whose new_handler frees a reserve first:
// nothing is allocated but the exceptions and the reserve, all freed.
void refused() {
    const size_t huge = SIZE_MAX / 4;
    try {
        g_sink = ::operator new(huge);
        std::printf("no bad_alloc\n");
    } catch (const std::bad_alloc&) {
        std::printf("bad_alloc\n");
    }
    g_sink = ::operator new[](huge, std::nothrow);
    std::printf("nothrow=%s\n", g_sink ? "block" : "nullptr");
    g_reserve = new char[4000];
    std::set_new_handler(release_reserve);
    try {
        g_sink = ::operator new[](huge);
        std::printf("no bad_alloc\n");
    } catch (const std::bad_alloc&) {
        std::printf("new_handler %s\n", g_reserve ? "not called" : "called");
    }
}

// A throwing new refused once: the address space is limited, the
// new_handler lifts the limit and allocates and frees a block of the same
// size (an allocator may hand that address to the retry), and the retry
// succeeds. Two allocations and two frees.
rlimit g_saved_limit;
size_t g_retry_size;
bool g_lifted;

void lift_limit() {
    std::set_new_handler(nullptr);
    setrlimit(RLIMIT_AS, &g_saved_limit);
    g_lifted = true;
    delete[] static_cast<char*>(kept(new char[g_retry_size]));
}

void retried() {
    long pages = 0;  // read(2), not stdio: no allocation of its own
    char statm[64] = {};
    const int fd = open("/proc/self/statm", O_RDONLY);
    if (fd >= 0 && read(fd, statm, sizeof statm - 1) > 0) pages = std::atol(statm);
    if (fd >= 0) close(fd);
    getrlimit(RLIMIT_AS, &g_saved_limit);
    const rlimit low{rlim_t(pages) * rlim_t(sysconf(_SC_PAGESIZE)) + (rlim_t{256} << 20), g_saved_limit.rlim_max};
    if (pages == 0 || setrlimit(RLIMIT_AS, &low) != 0) {
        std::perror("setrlimit");
        std::exit(1);
    }
    g_retry_size = size_t{512} << 20;
    std::set_new_handler(lift_limit);
    char* block = static_cast<char*>(kept(new char[g_retry_size]));
    block[0] = 1;
    delete[] block;
    std::printf("retried %s\n", g_lifted ? "after the new_handler" : "without the new_handler");
}

}  // namespace

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::atoi(argv[1]) : 4;
    const long iterations = argc > 2 ? std::atol(argv[2]) : 10000;
    std::vector<uint64_t> sums(static_cast<size_t>(threads));
    std::vector<std::thread> pool;
    pool.reserve(static_cast<size_t>(threads));
    for (int t = 0; t < threads; ++t) pool.emplace_back([&sums, t, iterations] { sums[size_t(t)] = work(iterations); });
    for (auto& th : pool) th.join();
    uint64_t total = 0;
    for (uint64_t s : sums) total += s;
    std::printf("threads=%d iterations=%ld sum=%llu\n", threads, iterations, static_cast<unsigned long long>(total));
    const std::string extra = argc > 3 ? argv[3] : "";
    if (extra == "forms") every_form();
    if (extra == "refused") refused();
    if (extra == "retried") retried();
    return 0;
}
