// The platform layer (sys/): /proc and cgroup parsers, the cgroup finder,
// clocks, directory walking and environment numbers.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <set>
#include <string>

#include "cgroup.h"
#include "clocks.h"
#include "dirwalk.h"
#include "env.h"
#include "files.h"
#include "kept_file.h"
#include "proc.h"
#include "shrink_guard.h"
#include "text.h"

using namespace gometrics;

TEST_CASE("sys: status fields, the number after the key, whole keys only") {
    const std::string_view s =
        "Name:\tcat\nThreadsX:\t9\nThreads:\t51\nVmRSS:\t    3508 kB\nvoluntary_ctxt_switches:\t12\n"
        "nonvoluntary_ctxt_switches:\t3";
    CHECK(sys::status_field(s, "Threads") == 51u);
    CHECK(sys::status_field(s, "VmRSS") == 3508u);
    CHECK(sys::status_field(s, "nonvoluntary_ctxt_switches") == 3u);
    CHECK(sys::status_field(s, "voluntary_ctxt_switches") == 12u);
    CHECK(!sys::status_field(s, "VmSwap"));
    CHECK(!sys::status_field(s, "Name"));  // not a number
    CHECK(!sys::status_field("", "Threads"));

    // Several at once, in one pass: the same answers, in the keys' order.
    const std::string_view keys[] = {"VmSwap", "voluntary_ctxt_switches", "Threads", "Name", "VmRSS"};
    std::optional<uint64_t> v[std::size(keys)];
    v[0] = 7;  // a stale value is cleared
    sys::status_fields(s, keys, v);
    CHECK(!v[0]);
    CHECK(v[1] == 12u);
    CHECK(v[2] == 51u);
    CHECK(!v[3]);
    CHECK(v[4] == 3508u);
    // The first line of a key decides, as for one key.
    const std::string_view twice = "Threads:\tmany\nThreads:\t4\nVmRSS:\t9 kB\n";
    sys::status_fields(twice, {keys + 2, 3}, {v + 2, 3});
    CHECK(!v[2]);
    CHECK(v[4] == 9u);
    CHECK(sys::status_field(twice, "Threads") == std::nullopt);
}

TEST_CASE("sys: stat, fields counted after the command name, whatever it holds") {
    const std::string_view s =
        "4242 (a) b (c) S 1 4242 4242 34816 4242 4194304 1500 0 7 0 250 31 0 0 20 0 3 0 987654 1000 200 "
        "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 93824992231424 93824992387072\n";
    const auto st = sys::parse_stat(s);
    REQUIRE(st);
    CHECK(st->minflt == 1500);
    CHECK(st->majflt == 7);
    CHECK(st->utime == 250);
    CHECK(st->stime == 31);
    CHECK(st->num_threads == 3);
    CHECK(st->starttime == 987654);
    CHECK(!sys::parse_stat("4242 (truncated) S 1 2 3"));
    CHECK(!sys::parse_stat("no parenthesis"));
    CHECK(!sys::parse_stat("1 (x) S 1 1 1 1 1 1 oops 0 7 0 250 31 0 0 20 0 3 0 5 1"));
    // Single fields, as proc(5) numbers them.
    CHECK(sys::stat_field(s, 4) == 1u);
    CHECK(sys::stat_field(s, 20) == 3u);
    CHECK(sys::stat_field(s, 22) == 987654u);
    CHECK(sys::stat_field(s, 47) == 93824992231424u);  // start_brk
    CHECK(sys::stat_field(s, 48) == 93824992387072u);
    CHECK(!sys::stat_field(s, 49));  // past the end
    CHECK(sys::stat_state(s) == 'S');
    CHECK(sys::stat_state("7 (a) b) Z 1") == 'Z');
    CHECK(!sys::stat_state("no parenthesis"));
    CHECK(!sys::stat_field(s, 3));   // the state letter
    CHECK(!sys::stat_field(s, 1));   // before the command name: not asked this way
}

TEST_CASE("sys: this process's own stat and status") {
    char buf[4096];
    const auto text = sys::read_file(AT_FDCWD, "/proc/self/stat", buf, sizeof buf);
    REQUIRE(text);
    const auto st = sys::parse_stat(*text);
    REQUIRE(st);
    CHECK(st->num_threads >= 1);
    CHECK(st->starttime > 0);
    CHECK(sys::stat_field(*text, 20) == st->num_threads);
    const auto status = sys::read_file(AT_FDCWD, "/proc/self/status", buf, sizeof buf);
    REQUIRE(status);
    CHECK(sys::status_field(*status, "Pid") == uint64_t(getpid()));
    CHECK(!sys::read_file(AT_FDCWD, "/proc/self/no-such-file", buf, sizeof buf));
    // A short buffer truncates.
    char small[8];
    const auto cut = sys::read_file(AT_FDCWD, "/proc/self/stat", small, sizeof small);
    REQUIRE(cut);
    CHECK(cut->size() == sizeof small);
    // An open descriptor is read from its start, every time.
    const int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    const auto first = sys::read_whole(fd, buf, sizeof buf);
    REQUIRE(first);
    CHECK(first->substr(0, 5) == "Name:");
    const auto again = sys::read_whole(fd, buf, sizeof buf);
    REQUIRE(again);
    CHECK(again->substr(0, 5) == "Name:");
    close(fd);
    CHECK(!sys::read_whole(-1, buf, sizeof buf));
}

TEST_CASE("sys: schedstat, three numbers") {
    const auto ss = sys::parse_schedstat("123 456 7\n");
    REQUIRE(ss);
    CHECK(ss->run_ns == 123);
    CHECK(ss->wait_ns == 456);
    CHECK(ss->timeslices == 7);
    CHECK(!sys::parse_schedstat("123 456"));
    CHECK(!sys::parse_schedstat("x y z"));
}

TEST_CASE("sys: maps lines") {
    const auto m = sys::parse_maps_line("7f12a000-7f12b000 r-xp 00001000 fd:01 1234   /usr/lib/x86_64-linux-gnu/libc.so.6\n");
    REQUIRE(m);
    CHECK(m->start == 0x7f12a000);
    CHECK(m->end == 0x7f12b000);
    CHECK(m->offset == 0x1000);
    CHECK(m->perms == "r-xp");
    CHECK(m->path == "/usr/lib/x86_64-linux-gnu/libc.so.6");
    const auto anon = sys::parse_maps_line("7f12a000-7f12b000 rw-p 00000000 00:00 0 ");
    REQUIRE(anon);
    CHECK(anon->path.empty());
    const auto spaced = sys::parse_maps_line("1000-2000 rw-s 00000000 00:05 9 /dev/shm/a b (deleted)");
    REQUIRE(spaced);
    CHECK(spaced->path == "/dev/shm/a b (deleted)");
    CHECK(!sys::parse_maps_line("1000 r-xp 0 fd:01 1 /x"));
    CHECK(!sys::parse_maps_line("zz-2000 r-xp 0 fd:01 1 /x"));
    CHECK(!sys::parse_maps_line(""));
}

TEST_CASE("sys: cgroup v2 group, seen from the mount's root") {
    const std::string_view host_mi =
        "22 1 0:20 / /sys/fs/cgroup/cpu rw,relatime shared:7 - cgroup cgroup rw,cpu\n"
        "35 25 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
    auto d = sys::find_cgroup(host_mi, "12:cpu:/a\n0::/user.slice/app.scope\n", "");
    REQUIRE(d);
    CHECK(d->mount_point == "/sys/fs/cgroup");
    CHECK(d->path == "/user.slice/app.scope");
    CHECK(!d->v1);
    // A container without its own cgroup namespace: the mount shows the
    // hierarchy from the container's group, which /proc/self/cgroup names in full.
    const std::string_view pod_mi =
        "35 25 0:30 /kube/pod1 /sys/fs/cgroup rw,nosuid shared:9 master:3 - cgroup2 cgroup2 rw,nsdelegate\n";
    d = sys::find_cgroup(pod_mi, "0::/kube/pod1/app\n", "memory");
    REQUIRE(d);
    CHECK(d->mount_point == "/sys/fs/cgroup");
    CHECK(d->path == "/app");
    d = sys::find_cgroup(pod_mi, "0::/kube/pod1\n", "");
    REQUIRE(d);
    CHECK(d->path.empty());
    d = sys::find_cgroup(pod_mi, "0::/kube/pod10\n", "");  // not below the root: left whole
    REQUIRE(d);
    CHECK(d->path == "/kube/pod10");
    d = sys::find_cgroup(host_mi, "0::/\n", "");
    REQUIRE(d);
    CHECK(d->path.empty());
    CHECK(!sys::find_cgroup(host_mi, "1:cpu:/\n", ""));
    CHECK(!sys::find_cgroup("22 1 0:20 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n", "0::/a\n", ""));
}

TEST_CASE("sys: cgroup v1 controller before cgroup2, its root taken off too") {
    const std::string_view mi =
        "30 25 0:26 /docker/c1 /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n"
        "31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
        "35 25 0:30 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n";
    const std::string_view cg = "9:memory:/docker/c1\n4:cpu,cpuacct:/docker/c1\n0::/docker/c1\n";
    auto d = sys::find_cgroup(mi, cg, "memory");
    REQUIRE(d);
    CHECK(d->v1);
    CHECK(d->mount_point == "/sys/fs/cgroup/memory");
    CHECK(d->path.empty());
    d = sys::find_cgroup(mi, cg, "cpu");
    REQUIRE(d);
    CHECK(d->v1);
    CHECK(d->mount_point == "/sys/fs/cgroup/cpu,cpuacct");
    CHECK(d->path == "/docker/c1");
    d = sys::find_cgroup(mi, cg, "");  // cgroup2 only
    REQUIRE(d);
    CHECK(!d->v1);
    CHECK(d->mount_point == "/sys/fs/cgroup/unified");
    CHECK(d->path == "/docker/c1");
    d = sys::find_cgroup(mi, cg, "pids");  // no such v1 hierarchy: cgroup2's
    REQUIRE(d);
    CHECK(!d->v1);
}

TEST_CASE("sys: cgroup file paths") {
    char out[64];
    sys::CgroupDir d{"/sys/fs/cgroup", "/a/b", false};
    CHECK(sys::cgroup_file_path(d, "memory.max", out, sizeof out) == std::string_view("/sys/fs/cgroup/a/b/memory.max").size());
    CHECK(std::string_view(out) == "/sys/fs/cgroup/a/b/memory.max");
    d.path = {};
    REQUIRE(sys::cgroup_file_path(d, "cpu.max", out, sizeof out) > 0);
    CHECK(std::string_view(out) == "/sys/fs/cgroup/cpu.max");
    char tiny[16];
    CHECK(sys::cgroup_file_path(d, "cpu.max", tiny, sizeof tiny) == 0);
}

TEST_CASE("sys: cgroup limits") {
    CHECK(sys::parse_cpu_max("150000 100000\n") == 1.5);
    CHECK(!sys::parse_cpu_max("max 100000\n"));
    CHECK(!sys::parse_cpu_max("150000 0\n"));
    CHECK(!sys::parse_cpu_max("15x0 100000\n"));
    CHECK(!sys::parse_cpu_max(""));
    CHECK(sys::parse_memory_limit("536870912\n") == 536870912u);
    CHECK(!sys::parse_memory_limit("max\n"));
    CHECK(!sys::parse_memory_limit("9223372036854771712\n"));  // v1's none
    CHECK(!sys::parse_memory_limit(""));
}

TEST_CASE("sys: clocks in nanoseconds") {
    CHECK(sys::to_ns(timespec{3, 5}) == 3000000005u);
    CHECK(sys::to_ns(timeval{2, 7}) == 2000007000u);
    const uint64_t a = sys::clock_ns(CLOCK_MONOTONIC), b = sys::clock_ns(CLOCK_MONOTONIC);
    CHECK(a > 0);
    CHECK(b >= a);
    CHECK(sys::ticks_to_ns(uint64_t(sysconf(_SC_CLK_TCK))) == sys::kNsPerSec);
}

TEST_CASE("sys: directory walking sees every entry") {
    char dir[] = "/tmp/gometrics-sys-XXXXXX";
    REQUIRE(mkdtemp(dir));
    std::set<std::string> made;
    for (int i = 0; i < 300; ++i) {  // more than one buffer's worth
        const std::string name = "entry-" + std::to_string(i);
        const int fd = openat(AT_FDCWD, (std::string(dir) + "/" + name).c_str(), O_CREAT | O_WRONLY, 0600);
        REQUIRE(fd >= 0);
        close(fd);
        made.insert(name);
    }
    const int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    REQUIRE(dfd >= 0);
    alignas(8) char buf[1024];
    std::set<std::string> seen;
    CHECK(sys::for_each_dirent(dfd, buf, sizeof buf, [&](const char* name) { seen.insert(name); }));
    CHECK(seen.count(".") == 1);
    CHECK(seen.count("..") == 1);
    seen.erase(".");
    seen.erase("..");
    CHECK(seen == made);
    close(dfd);
    for (const auto& n : made) unlink((std::string(dir) + "/" + n).c_str());
    rmdir(dir);
    CHECK(!sys::for_each_dirent(-1, buf, sizeof buf, [](const char*) {}));
}

TEST_CASE("sys: environment numbers") {
    using E = sys::EnvNumber;
    CHECK(sys::parse_env_number(nullptr, 0, 10).status == E::kUnset);
    CHECK(sys::parse_env_number("", 0, 10).status == E::kUnset);
    const auto ok = sys::parse_env_number("7", 1, 10);
    CHECK(ok.status == E::kOk);
    CHECK(ok.value == 7);
    CHECK(sys::parse_env_number("0", 1, 10).status == E::kInvalid);
    CHECK(sys::parse_env_number("11", 1, 10).status == E::kInvalid);
    CHECK(sys::parse_env_number("7x", 1, 10).status == E::kInvalid);
    CHECK(sys::parse_env_number("-1", 0, UINT64_MAX).status == E::kInvalid);
    CHECK(sys::parse_env_number("99999999999999999999999", 0, UINT64_MAX).status == E::kInvalid);
    const auto bad = sys::parse_env_number("x", 0, 1);
    CHECK(std::string_view(bad.text) == "x");
    setenv("GOMETRICS_SYS_TEST", "42", 1);
    CHECK(sys::env_number("GOMETRICS_SYS_TEST", 0, 100).value == 42);
    unsetenv("GOMETRICS_SYS_TEST");
    CHECK(sys::env_number("GOMETRICS_SYS_TEST", 0, 100).status == E::kUnset);
}

TEST_CASE("sys: text helpers") {
    CHECK(sys::text::has_item("rw,memory,cpu", "memory"));
    CHECK(!sys::text::has_item("rw,memoryx", "memory"));
    CHECK(!sys::text::parse_u64(""));
    CHECK(sys::text::parse_u64("18446744073709551615") == UINT64_MAX);
    std::string_view s = "  12 x";
    CHECK(sys::text::take_u64(s) == 12u);
    CHECK(s == " x");

    std::string_view f = "  one two\nthree";
    CHECK(sys::text::take_field(f) == "one");
    CHECK(sys::text::take_field(f) == "two");
    CHECK(f == "\nthree");
    CHECK(sys::text::take_field(f).empty());
    f = "last";
    CHECK(sys::text::take_field(f) == "last");
    CHECK(f.empty());

    // mountinfo's " - ": not a '-' inside a field, nor one at either end.
    using sys::text::find_separator;
    CHECK(find_separator("36 1 0:3 / /run/user-1 rw - tmpfs tmpfs rw") == 25);
    CHECK(find_separator("a-b c -d e- f") == std::string_view::npos);
    CHECK(find_separator("- x") == std::string_view::npos);
    CHECK(find_separator("x -") == std::string_view::npos);
    CHECK(find_separator("x - ") == 1);
    CHECK(find_separator("") == std::string_view::npos);
}

TEST_CASE("sys: a held kept floor is the limit read as the hold began") {
    rlimit old{};
    REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
    REQUIRE(old.rlim_cur >= 600);  // room to lower it and still keep files
    const int before = gometrics::sys::kept_fd_floor();
    REQUIRE(before > 0);
    rlimit lower = old;
    lower.rlim_cur = 512;
    {
        const gometrics::sys::KeptFloorHeld held;
        CHECK(gometrics::sys::kept_fd_floor() == before);
        REQUIRE(setrlimit(RLIMIT_NOFILE, &lower) == 0);
        CHECK(gometrics::sys::kept_fd_floor() == before);  // not asked again
        {
            const gometrics::sys::KeptFloorHeld inner;  // reads the limit now
            CHECK(gometrics::sys::kept_fd_floor() < before);
        }
        CHECK(gometrics::sys::kept_fd_floor() == before);  // the outer hold's again
    }
    const int after = gometrics::sys::kept_fd_floor();  // asked again
    REQUIRE(setrlimit(RLIMIT_NOFILE, &old) == 0);
    CHECK(after < before);
    CHECK(after > 0);
}

TEST_CASE("sys: open_regular refuses a FIFO without waiting for a writer") {
    char dir[] = "/tmp/gometrics-unit-XXXXXX";
    REQUIRE(mkdtemp(dir));
    const std::string fifo = std::string(dir) + "/fifo";
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    CHECK(gometrics::sys::open_regular(fifo.c_str(), O_RDONLY) == -1);  // returns: the test would hang otherwise
    CHECK(std::string(gometrics::sys::open_error(errno)) == "not a regular file");
    CHECK(gometrics::sys::open_regular(dir, O_RDONLY) == -1);
    const int fd = gometrics::sys::open_regular("/proc/self/stat", O_RDONLY);
    CHECK(fd >= 0);
    close(fd);
    unlink(fifo.c_str());
    rmdir(dir);
}

TEST_CASE("sys: a guarded mapping whose file shrinks reads zeros and says so") {
    char path[] = "/tmp/gometrics-unit-XXXXXX", other_path[] = "/tmp/gometrics-unit-XXXXXX";
    const int fd = mkstemp(path), other_fd = mkstemp(other_path);
    REQUIRE(fd >= 0);
    REQUIRE(other_fd >= 0);
    unlink(path);
    unlink(other_path);
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    constexpr size_t kOtherPages = 200;  // more faults elsewhere than a small record of them would keep
    REQUIRE(ftruncate(fd, static_cast<off_t>(3 * page)) == 0);
    REQUIRE(ftruncate(other_fd, static_cast<off_t>(kOtherPages * page)) == 0);
    auto* mapped = static_cast<volatile unsigned char*>(mmap(nullptr, 3 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    auto* other = static_cast<volatile unsigned char*>(mmap(nullptr, kOtherPages * page, PROT_READ, MAP_SHARED, other_fd, 0));
    REQUIRE(mapped != MAP_FAILED);
    REQUIRE(other != MAP_FAILED);
    gometrics::sys::install_shrink_guard();  // as the CLI does; the reader library alone never does
    mapped[2 * page] = 7;
    const uint64_t before = gometrics::sys::shrink_faults();
    REQUIRE(ftruncate(fd, static_cast<off_t>(page)) == 0);
    CHECK(mapped[0] == 0);  // still the file's
    CHECK_FALSE(gometrics::sys::faulted_since(before, const_cast<unsigned char*>(mapped), 3 * page));
    CHECK(mapped[2 * page] == 0);  // past the end: SIGBUS, stood in for
    CHECK(gometrics::sys::faulted_since(before, const_cast<unsigned char*>(mapped), 3 * page));
    CHECK_FALSE(gometrics::sys::faulted_since(before, const_cast<unsigned char*>(other), kOtherPages * page));
    // Another reader's file loses all its pages: this one's is still whole.
    const uint64_t later = gometrics::sys::shrink_faults();
    REQUIRE(ftruncate(other_fd, 0) == 0);
    unsigned sum = 0;
    for (size_t i = 0; i < kOtherPages; ++i) sum += other[i * page];
    CHECK(sum == 0);
    CHECK(gometrics::sys::shrink_faults() - later == kOtherPages);
    CHECK(gometrics::sys::faulted_since(later, const_cast<unsigned char*>(other), kOtherPages * page));
    CHECK_FALSE(gometrics::sys::faulted_since(later, const_cast<unsigned char*>(mapped), 3 * page));
    munmap(const_cast<unsigned char*>(mapped), 3 * page);
    munmap(const_cast<unsigned char*>(other), kOtherPages * page);
    close(fd);
    close(other_fd);
}
