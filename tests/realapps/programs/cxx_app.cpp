// C++ allocation paths under the agent: new/delete, new[]/delete[], aligned
// new (operator new with align_val_t, served by aligned_alloc) and
// std::thread. Per iteration exactly five allocations and five frees, so a
// test can compare a run against its twin with zero iterations. With a third
// argument, it also asks for more memory than exists, from the throwing and
// the nothrow new: bad_alloc and nullptr, nothing allocated.
//   cxx_app THREADS ITERATIONS [refused]
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
    if (argc > 3) {
        const size_t huge = SIZE_MAX / 4;
        try {
            g_sink = ::operator new(huge);
            std::printf("no bad_alloc\n");
        } catch (const std::bad_alloc&) {
            std::printf("bad_alloc\n");
        }
        g_sink = ::operator new[](huge, std::nothrow);
        std::printf("nothrow=%s\n", g_sink ? "block" : "nullptr");
    }
    return 0;
}
