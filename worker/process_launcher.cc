#include "worker/process_launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <mutex>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "worker/pid_file.h"

extern char** environ;

namespace sublet::worker {
namespace {

// SIGCHLD is process-wide, launchers are not: the handler writes one byte to
// the self-pipe of every live launcher (a fixed table of write ends, +1 so
// that 0 means a free slot). A launcher that finds no free slot still works,
// because the worker also reaps on its periodic wake-ups.
constexpr int kMaxWakeupPipes = 32;
std::atomic<int> g_wakeup_pipes[kMaxWakeupPipes];

void OnSigchld(int) {
  const int saved_errno = errno;
  for (std::atomic<int>& slot : g_wakeup_pipes) {
    const int fd = slot.load(std::memory_order_relaxed) - 1;
    const char byte = 0;
    if (fd >= 0) (void)!write(fd, &byte, 1);  // a full pipe already wakes the reader
  }
  errno = saved_errno;
}

void InstallSigchldHandlerOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_handler = OnSigchld;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &action, nullptr);
  });
}

void RegisterWakeupPipe(int write_fd) {
  for (std::atomic<int>& slot : g_wakeup_pipes) {
    int expected = 0;
    if (slot.compare_exchange_strong(expected, write_fd + 1)) return;
  }
}

void UnregisterWakeupPipe(int write_fd) {
  for (std::atomic<int>& slot : g_wakeup_pipes) {
    int expected = write_fd + 1;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

// write(2) the whole buffer, ignoring errors: used in the child after fork.
void WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n <= 0) return;
    data += n;
    size -= static_cast<size_t>(n);
  }
}

void WriteCString(int fd, const char* text) { WriteAll(fd, text, strlen(text)); }

// Everything the child needs, prepared before fork: between fork and exec the
// child only makes async-signal-safe calls on these arrays.
struct ChildPlan {
  std::vector<std::string> args;
  std::vector<std::string> env_strings;
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::string exec_error_prefix;
  std::string chdir_error_prefix;
};

[[noreturn]] void RunChild(const LaunchSpec& spec, ChildPlan& plan, int log_fd, int null_fd,
                          int started_fd, int go_read, int go_write) {
  setsid();
  close(started_fd);  // tells the parent the new process group exists
  // Run nothing until the parent has recorded us in a pid file: if the worker
  // dies before that, the read sees EOF and we leave, so no rank can ever
  // outlive its worker unrecorded (the next worker kills recorded ones).
  close(go_write);
  char go = 0;
  ssize_t n;
  while ((n = read(go_read, &go, 1)) < 0 && errno == EINTR) {
  }
  if (n != 1) _exit(126);
  close(go_read);
  dup2(null_fd, STDIN_FILENO);
  dup2(log_fd, STDOUT_FILENO);
  dup2(log_fd, STDERR_FILENO);
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, nullptr);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGHUP, SIGQUIT}) {
    signal(sig, SIG_DFL);  // ignored dispositions would survive exec
  }
  if (chdir(spec.working_dir.c_str()) != 0) {
    const int error = errno;
    WriteAll(STDERR_FILENO, plan.chdir_error_prefix.data(), plan.chdir_error_prefix.size());
    WriteCString(STDERR_FILENO, strerrordesc_np(error));
    WriteCString(STDERR_FILENO, "\n");
    _exit(127);
  }
  environ = plan.envp.data();  // execvp searches the PATH of `environ`
  execvp(plan.argv[0], plan.argv.data());
  const int error = errno;
  WriteAll(STDERR_FILENO, plan.exec_error_prefix.data(), plan.exec_error_prefix.size());
  WriteCString(STDERR_FILENO, strerrordesc_np(error));
  WriteCString(STDERR_FILENO, "\n");
  _exit(127);
}

// The child dup2()s onto 0, 1 and 2; an fd already there (a daemon started
// with stdio closed) would be clobbered or keep FD_CLOEXEC, so move it up.
int AboveStdio(int fd) {
  if (fd < 0 || fd > STDERR_FILENO) return fd;
  const int moved = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
  close(fd);
  return moved;
}

absl::Status ErrnoStatus(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
}

}  // namespace

std::vector<std::string> MergeEnvironment(
    const std::vector<std::string>& base,
    const std::vector<std::pair<std::string, std::string>>& overlay,
    const std::string& path_prefix) {
  // The worker's own SUBLET_* settings (its token, its coordinator) are not
  // the rank's business: tenant code must never see a service credential.
  std::vector<std::string> merged;
  for (const std::string& entry : base) {
    if (!entry.starts_with("SUBLET_")) merged.push_back(entry);
  }
  auto set = [&merged](const std::string& name, const std::string& value) {
    const std::string prefix = name + "=";
    for (std::string& entry : merged) {
      if (entry.starts_with(prefix)) {
        entry = prefix + value;
        return;
      }
    }
    merged.push_back(prefix + value);
  };
  for (const auto& [name, value] : overlay) set(name, value);
  if (!path_prefix.empty()) {
    std::string path = "/usr/local/bin:/usr/bin:/bin";
    for (const std::string& entry : merged) {
      if (entry.starts_with("PATH=")) path = entry.substr(5);
    }
    set("PATH", path.empty() ? path_prefix : path_prefix + ":" + path);
  }
  return merged;
}

std::string OwnExecutableDir() {
  std::error_code error;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::string() : exe.parent_path().string();
}

int ExitCodeFromWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return 255;
}

PosixProcessLauncher::PosixProcessLauncher(Options options) : options_(std::move(options)) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0) {
    pipe_read_ = fds[0];
    pipe_write_ = fds[1];
    RegisterWakeupPipe(pipe_write_);
  }
  InstallSigchldHandlerOnce();
}

PosixProcessLauncher::~PosixProcessLauncher() {
  if (pipe_write_ >= 0) {
    UnregisterWakeupPipe(pipe_write_);
    close(pipe_write_);
    close(pipe_read_);
  }
}

absl::StatusOr<int> PosixProcessLauncher::Launch(const LaunchSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return absl::InvalidArgumentError("empty command");
  }
  ChildPlan plan;
  std::vector<std::string> base;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    base.emplace_back(*entry);
  }
  plan.env_strings = MergeEnvironment(base, spec.env, options_.path_prefix);
  plan.args = spec.argv;
  for (std::string& arg : plan.args) plan.argv.push_back(arg.data());
  plan.argv.push_back(nullptr);
  for (std::string& entry : plan.env_strings) plan.envp.push_back(entry.data());
  plan.envp.push_back(nullptr);
  plan.exec_error_prefix = absl::StrCat("sublet-worker: cannot run ", spec.argv[0], ": ");
  plan.chdir_error_prefix = absl::StrCat("sublet-worker: cannot enter ", spec.working_dir, ": ");

  const int log_fd =
      AboveStdio(open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (log_fd < 0) return ErrnoStatus(absl::StrCat("cannot open log ", spec.log_path));
  const int null_fd = AboveStdio(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null_fd < 0) {
    close(log_fd);
    return ErrnoStatus("cannot open /dev/null");
  }
  // The child closes `started` once it leads its own process group, so that
  // SignalGroup works as soon as Launch returns.
  int started[2];
  int go[2];
  if (pipe2(started, O_CLOEXEC) != 0) {
    close(log_fd);
    close(null_fd);
    return ErrnoStatus("pipe");
  }
  if (pipe2(go, O_CLOEXEC) != 0) {
    for (int fd : {log_fd, null_fd, started[0], started[1]}) close(fd);
    return ErrnoStatus("pipe");
  }
  const pid_t pid = fork();
  if (pid == 0) RunChild(spec, plan, log_fd, null_fd, started[1], go[0], go[1]);
  const int fork_errno = errno;
  close(log_fd);
  close(null_fd);
  close(started[1]);
  close(go[0]);
  if (pid > 0) {
    char ignored;
    while (read(started[0], &ignored, 1) < 0 && errno == EINTR) {
    }
  }
  close(started[0]);
  if (pid < 0) {
    close(go[1]);
    errno = fork_errno;
    return ErrnoStatus("fork");
  }
  children_.push_back(Child{.pid = pid, .pid_file = spec.pid_file});
  if (!spec.pid_file.empty()) {
    absl::Status written = WritePidFile(spec.pid_file, pid);
    if (!written.ok()) {
      close(go[1]);  // the child leaves without running anything
      return written;
    }
  }
  const char proceed = 1;
  WriteAll(go[1], &proceed, 1);
  close(go[1]);
  return pid;
}

absl::Status PosixProcessLauncher::SignalGroup(int pid, int signal) {
  if (pid <= 0) return absl::InvalidArgumentError(absl::StrCat("bad pid ", pid));
  if (kill(-pid, signal) == 0) return absl::OkStatus();
  if (errno == ESRCH) return absl::NotFoundError(absl::StrCat("no process group ", pid));
  return ErrnoStatus(absl::StrCat("kill group ", pid));
}

absl::Status PosixProcessLauncher::Signal(int pid, int signal) {
  if (pid <= 0) return absl::InvalidArgumentError(absl::StrCat("bad pid ", pid));
  if (kill(pid, signal) == 0) return absl::OkStatus();
  if (errno == ESRCH) return absl::NotFoundError(absl::StrCat("no process ", pid));
  return ErrnoStatus(absl::StrCat("kill ", pid));
}

std::vector<ProcessExit> PosixProcessLauncher::Reap() {
  char drain[256];
  while (pipe_read_ >= 0 && read(pipe_read_, drain, sizeof(drain)) > 0) {
  }
  std::vector<ProcessExit> exits;
  std::erase_if(children_, [&exits](const Child& child) {
    int status = 0;
    const pid_t r = waitpid(child.pid, &status, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR)) return false;
    // r < 0 (ECHILD): someone else reaped it and its status is lost.
    exits.push_back(ProcessExit{.pid = child.pid,
                                .exit_code = r > 0 ? ExitCodeFromWaitStatus(status) : 255});
    kill(-child.pid, SIGKILL);
    if (!child.pid_file.empty()) {
      std::error_code ignored;
      std::filesystem::remove(child.pid_file, ignored);
    }
    return true;
  });
  return exits;
}

}  // namespace sublet::worker
