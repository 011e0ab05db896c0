// The bundled demo: a small service-like workload (worker threads that
// allocate request buffers, share a cache behind a mutex, and keep a slowly
// growing set of sessions) for scripts/demo.sh to watch from outside.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

std::mutex cache_mutex;
std::map<int, std::string> cache;
std::vector<std::unique_ptr<char[]>> sessions;  // leaks on purpose: live heap grows

void worker(int id, std::chrono::steady_clock::time_point until) {
    unsigned seed = static_cast<unsigned>(id) * 7919u;
    while (std::chrono::steady_clock::now() < until) {
        seed = seed * 1103515245u + 12345u;
        std::vector<char> request((seed >> 8) % 16384 + 64);  // a request buffer
        request[0] = static_cast<char>(id);
        {
            std::lock_guard lock(cache_mutex);  // contended on purpose
            cache[static_cast<int>(seed % 1000)] = std::string(request.size() % 200, 'x');
            if (seed % 97 == 0) sessions.emplace_back(new char[4096]);
        }
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
}

}  // namespace

int main(int argc, char** argv) {
    const int seconds = argc > 1 ? std::atoi(argv[1]) : 20;
    const int threads = argc > 2 ? std::atoi(argv[2]) : 4;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    std::printf("demo: %d threads for %d s\n", threads, seconds);
    std::fflush(stdout);
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) pool.emplace_back(worker, i, until);
    for (auto& t : pool) t.join();
    std::printf("demo: done, %zu sessions kept\n", sessions.size());
    return 0;
}
