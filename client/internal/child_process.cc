#include "client/internal/child_process.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>

namespace sublet::client::internal {
namespace {

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// Runs in the child between fork and exec: async-signal-safe calls only.
[[noreturn]] void ExecChild(char* const* argv, char* const* envp, int log_fd, int null_fd,
                            pid_t parent) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) _exit(127);  // the parent died before prctl
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  dup2(null_fd, STDIN_FILENO);
  dup2(log_fd, STDOUT_FILENO);
  dup2(log_fd, STDERR_FILENO);
  execve(argv[0], argv, envp);
  _exit(127);
}

}  // namespace

absl::StatusOr<ChildProcess> ChildProcess::Spawn(std::string name,
                                                 const std::vector<std::string>& argv,
                                                 const std::vector<std::string>& env,
                                                 const std::string& log_path) {
  std::vector<char*> c_argv = CStrings(argv);
  std::vector<char*> c_env = CStrings(env);
  const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) {
    return absl::InternalError(fmt::format("cannot open {}: {}", log_path, strerror(errno)));
  }
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) ExecChild(c_argv.data(), c_env.data(), log_fd, null_fd, parent);
  const int fork_errno = errno;
  close(log_fd);
  if (null_fd >= 0) close(null_fd);
  if (pid < 0) {
    return absl::InternalError(fmt::format("cannot start {}: {}", name, strerror(fork_errno)));
  }
  return ChildProcess(std::move(name), log_path, pid);
}

bool ChildProcess::Poll() {
  if (wait_status_) return true;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) wait_status_ = status;
  return wait_status_.has_value();
}

std::string ChildProcess::DescribeExit() const {
  if (!wait_status_) return "running";
  if (WIFSIGNALED(*wait_status_))
    return fmt::format("killed by signal {}", WTERMSIG(*wait_status_));
  const int code = WEXITSTATUS(*wait_status_);
  return code == 127 ? "exit code 127 (could not be executed)" : fmt::format("exit code {}", code);
}

void ChildProcess::Signal(int signal) {
  if (!Poll()) kill(pid_, signal);
}

StopSignals::StopSignals() {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, &previous_);
}

StopSignals::~StopSignals() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }

std::optional<int> StopSignals::Wait(std::chrono::milliseconds timeout) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  const timespec wait = {.tv_sec = seconds.count(),
                         .tv_nsec = (timeout - seconds).count() * 1'000'000L};
  const int signal = sigtimedwait(&stop, nullptr, &wait);
  if (signal < 0) return std::nullopt;
  return signal;
}

std::string TailFile(const std::string& path, int max_lines) {
  std::ifstream in(path);
  std::deque<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(std::move(line));
    if (static_cast<int>(lines.size()) > max_lines) lines.pop_front();
  }
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

}  // namespace sublet::client::internal
