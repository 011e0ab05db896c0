// Running CMD; see exec_run.h.
#include "exec_run.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "common.h"

namespace gometrics::cli {

namespace {

constexpr int kPollMs = 100;
constexpr std::string_view kSegmentPrefix = "gometrics.";

volatile sig_atomic_t g_child = 0;

void forward_signal(int sig) {
    if (g_child > 0) kill(g_child, sig);
}

}  // namespace

Ended run(const std::vector<std::string>& command, Tree& tree) {
    // Before fork, so that no segment of the tree is created unseen.
    const int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (in < 0 || inotify_add_watch(in, "/dev/shm", IN_CREATE) < 0)
        eprint("gometrics-cli: cannot watch /dev/shm ({}): processes that die without an exit report "
               "will be missing", std::strerror(errno));
    prctl(PR_SET_CHILD_SUBREAPER, 1);

    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0) throw Failure(kExitError, fmt::format("pipe: {}", std::strerror(errno)));
    std::vector<char*> argv;
    for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);

    const pid_t child = fork();
    if (child < 0) throw Failure(kExitError, fmt::format("fork: {}", std::strerror(errno)));
    if (child == 0) {
        execvp(argv[0], argv.data());
        const int err = errno;
        (void)!write(errpipe[1], &err, sizeof err);
        _exit(127);
    }
    close(errpipe[1]);
    g_child = child;
    // The terminal's Ctrl-C and Ctrl-\ reach CMD directly (same process
    // group); exec outlives them to report. Other signals are passed on.
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    struct sigaction sa {};
    sa.sa_handler = forward_signal;
    sa.sa_flags = SA_RESTART;
    for (int s : {SIGTERM, SIGHUP, SIGUSR1, SIGUSR2}) sigaction(s, &sa, nullptr);

    int exec_errno = 0;
    const bool exec_failed = read(errpipe[0], &exec_errno, sizeof exec_errno) == sizeof exec_errno;
    close(errpipe[0]);

    Ended ended;
    // Readable when CMD exits, so that exec does not sleep out a poll period
    // after it (pidfd_open: Linux 5.3; without it, the period is waited).
    const int cmd_fd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
    bool done = false;
    char buf[4096] __attribute__((aligned(alignof(inotify_event))));
    auto next_poll = std::chrono::steady_clock::now();
    while (!done) {
        pollfd fds[2] = {{in, POLLIN, 0}, {cmd_fd, POLLIN, 0}};  // poll() skips a negative fd
        const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_poll - std::chrono::steady_clock::now());
        ::poll(fds, 2, static_cast<int>(std::max<int64_t>(0, wait.count())));
        for (ssize_t n; in >= 0 && (n = read(in, buf, sizeof buf)) > 0;) {
            for (char* at = buf; at < buf + n;) {
                const auto* ev = reinterpret_cast<const inotify_event*>(at);
                std::string_view name = ev->len ? ev->name : "";
                if (name.starts_with(kSegmentPrefix)) {
                    const int pid = std::atoi(name.substr(kSegmentPrefix.size()).data());
                    if (pid > 0) tree.notice(pid);
                }
                at += sizeof(inotify_event) + ev->len;
            }
        }
        if (std::chrono::steady_clock::now() >= next_poll) {
            tree.poll();
            next_poll = std::chrono::steady_clock::now() + std::chrono::milliseconds(kPollMs);
        }
        // Reap CMD and any orphan handed to us as subreaper.
        for (int st; ;) {
            const pid_t r = waitpid(-1, &st, WNOHANG);
            if (r <= 0) break;
            if (r != child) continue;
            done = true;
            ended.pid = child;
            if (WIFSIGNALED(st)) {
                ended.status = 128 + WTERMSIG(st);
                ended.signal = WTERMSIG(st);
            } else {
                ended.status = WEXITSTATUS(st);
            }
        }
    }
    g_child = 0;
    if (in >= 0) close(in);
    if (cmd_fd >= 0) close(cmd_fd);
    if (exec_failed)
        throw Failure(exec_errno == ENOENT ? 127 : 126,
                      fmt::format("cannot run {}: {}", command[0], std::strerror(exec_errno)));
    return ended;
}

}  // namespace gometrics::cli
