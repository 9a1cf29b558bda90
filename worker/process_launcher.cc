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
#include "absl/strings/string_view.h"
#include "common/exit_codes.h"
#include "worker/internal/child_io.h"
#include "worker/internal/rank_sandbox.h"
#include "worker/pid_file.h"

extern char** environ;

namespace sublet::worker {
namespace {

using internal::UniqueFd;
using internal::WriteFailure;

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

// Everything the child needs, prepared before fork: between fork and exec the
// child only makes async-signal-safe calls on these arrays.
struct ChildPlan {
  std::vector<std::string> args;
  std::vector<std::string> env_strings;
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::string working_dir;
};

// The descriptors the child starts with (the parent owns them).
struct ChildFds {
  int log;
  int null;
  int started_write;  // closed by the child once it leads its own session
  int go_read;        // one byte from the parent means "run"
  int go_write;
};

// The child's steps, in order. Each one that fails writes a fixed message to
// `report_fd` (the log, or stderr once that is the log) and exits
// kExitCannotExecute: no rank runs half set up. Async-signal-safe only.
class ChildSetup {
 public:
  explicit ChildSetup(int report_fd) : report_fd_(report_fd) {}

  void Require(bool done, const char* step) const {
    if (!done) Fail({.step = step, .error = errno});
  }
  [[noreturn]] void Fail(ChildStepStatus status) const {
    WriteFailure(report_fd_, "sublet-worker: cannot set up the process: ", status.step,
                 status.error);
    _exit(kExitCannotExecute);
  }
  void ReportToStderr() { report_fd_ = STDERR_FILENO; }

 private:
  int report_fd_;
};

// On Linux a close interrupted by a signal has still released the fd.
bool Closed(int fd) { return close(fd) == 0 || errno == EINTR; }

// Blocks until the parent has recorded us in a pid file: if the worker dies
// before that, the read sees EOF and we leave, so no rank can ever outlive its
// worker unrecorded (the next worker kills recorded ones).
void AwaitGo(const ChildSetup& setup, const ChildFds& fds) {
  setup.Require(Closed(fds.go_write), "close the go-pipe's write end");
  char go = 0;
  ssize_t n;
  while ((n = read(fds.go_read, &go, 1)) < 0 && errno == EINTR) {
  }
  setup.Require(n >= 0, "read the go-pipe");
  if (n == 0) setup.Fail({.step = "the worker closed the go-pipe before recording the pid"});
  setup.Require(Closed(fds.go_read), "close the go-pipe");
}

void RedirectStdio(ChildSetup& setup, const ChildFds& fds) {
  setup.Require(dup2(fds.null, STDIN_FILENO) >= 0, "dup2 /dev/null to stdin");
  setup.Require(dup2(fds.log, STDOUT_FILENO) >= 0, "dup2 the log to stdout");
  setup.Require(dup2(fds.log, STDERR_FILENO) >= 0, "dup2 the log to stderr");
  setup.ReportToStderr();
}

// Blocked signals and ignored dispositions would survive exec.
void ResetSignals(const ChildSetup& setup) {
  sigset_t empty;
  sigemptyset(&empty);
  setup.Require(sigprocmask(SIG_SETMASK, &empty, nullptr) == 0, "sigprocmask");
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGHUP, SIGQUIT}) {
    setup.Require(sigaction(sig, &default_action, nullptr) == 0, "reset a signal disposition");
  }
}

// A working directory or command that cannot be used is the command's
// problem, not the setup's: exit kExitCommandNotFound, as a shell would.
[[noreturn]] void EnterAndExec(ChildPlan& plan) {
  if (chdir(plan.working_dir.c_str()) != 0) {
    WriteFailure(STDERR_FILENO, "sublet-worker: cannot enter ", plan.working_dir.c_str(), errno);
    _exit(kExitCommandNotFound);
  }
  environ = plan.envp.data();  // execvp searches the PATH of `environ`
  execvp(plan.argv[0], plan.argv.data());
  WriteFailure(STDERR_FILENO, "sublet-worker: cannot run ", plan.argv[0], errno);
  _exit(kExitCommandNotFound);
}

[[noreturn]] void RunChild(ChildPlan& plan, const ChildFds& fds, PreparedConfinement& confinement) {
  ChildSetup setup(fds.log);
  setup.Require(setsid() >= 0, "setsid");
  setup.Require(Closed(fds.started_write), "close the started-pipe");
  AwaitGo(setup, fds);
  RedirectStdio(setup, fds);
  ResetSignals(setup);
  if (ChildStepStatus confined = confinement.Apply(); !confined.ok()) setup.Fail(confined);
  EnterAndExec(plan);
}

absl::Status ErrnoStatus(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
}

// Waits for EOF on the started-pipe: the child closed its end (it leads its
// own session now) or died.
absl::Status AwaitStarted(int started_read) {
  char ignored;
  ssize_t n;
  while ((n = read(started_read, &ignored, 1)) < 0 && errno == EINTR) {
  }
  return n < 0 ? ErrnoStatus("read the started-pipe") : absl::OkStatus();
}

// One byte on the go-pipe: the child may run.
absl::Status ReleaseChild(int go_write) {
  const char proceed = 1;
  ssize_t written;
  while ((written = write(go_write, &proceed, 1)) < 0 && errno == EINTR) {
  }
  return written == 1 ? absl::OkStatus() : ErrnoStatus("write the go-pipe");
}

// The child dup2()s onto 0, 1 and 2; an fd already there (a daemon started
// with stdio closed) would be clobbered or keep FD_CLOEXEC, so move it up.
absl::StatusOr<UniqueFd> AboveStdio(UniqueFd fd, absl::string_view what) {
  if (fd.get() > STDERR_FILENO) return fd;
  UniqueFd moved(fcntl(fd.get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1));
  if (!moved.valid()) return ErrnoStatus(absl::StrCat("move ", what, " above stdio"));
  return moved;
}

absl::StatusOr<UniqueFd> Open(const std::string& path, int flags, absl::string_view what) {
  UniqueFd fd(open(path.c_str(), flags | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoStatus(absl::StrCat("open ", what, " ", path));
  return AboveStdio(std::move(fd), what);
}

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

absl::StatusOr<Pipe> MakePipe(absl::string_view what) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus(absl::StrCat("create the ", what));
  Pipe ends{UniqueFd(fds[0]), UniqueFd(fds[1])};
  SUBLET_ASSIGN_OR_RETURN(ends.read, AboveStdio(std::move(ends.read), what));
  SUBLET_ASSIGN_OR_RETURN(ends.write, AboveStdio(std::move(ends.write), what));
  return ends;
}

ChildPlan MakeChildPlan(const LaunchSpec& spec, const std::string& path_prefix,
                        PosixProcessLauncher::Options::Environment environment) {
  ChildPlan plan;
  std::vector<std::string> base;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    base.emplace_back(*entry);
  }
  if (environment == PosixProcessLauncher::Options::Environment::kAllowList) {
    base = internal::AllowListedEnvironment(base);
  }
  plan.env_strings = MergeEnvironment(base, spec.env, path_prefix);
  plan.args = spec.argv;
  for (std::string& arg : plan.args) plan.argv.push_back(arg.data());
  plan.argv.push_back(nullptr);
  for (std::string& entry : plan.env_strings) plan.envp.push_back(entry.data());
  plan.envp.push_back(nullptr);
  plan.working_dir = spec.working_dir;
  return plan;
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
  if (WIFSIGNALED(wait_status)) return ExitCodeForSignal(WTERMSIG(wait_status));
  return 255;
}

PosixProcessLauncher::PosixProcessLauncher(Options options)
    : options_(std::move(options)),
      confinement_(options_.confinement != nullptr ? options_.confinement : &no_confinement_) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0) {
    pipe_read_.reset(fds[0]);
    pipe_write_.reset(fds[1]);
    RegisterWakeupPipe(pipe_write_.get());
  }
  InstallSigchldHandlerOnce();
}

PosixProcessLauncher::~PosixProcessLauncher() {
  if (pipe_write_.valid()) UnregisterWakeupPipe(pipe_write_.get());
}

// The parent's half of the launch. The pipes order it with the child:
//   1. fork; the child makes itself a session leader and closes `started`,
//      so SignalGroup works as soon as Launch returns;
//   2. the pid file is written (the child waits on `go` meanwhile);
//   3. one byte on `go` lets the child run. Any error before that closes `go`
//      unwritten, and the child leaves without running anything.
absl::StatusOr<int> PosixProcessLauncher::Launch(const LaunchSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return absl::InvalidArgumentError("empty command");
  }
  SUBLET_ASSIGN_OR_RETURN(std::unique_ptr<PreparedConfinement> confinement,
                          confinement_->Prepare(spec));
  ChildPlan plan = MakeChildPlan(spec, options_.path_prefix, options_.environment);
  SUBLET_ASSIGN_OR_RETURN(UniqueFd log_fd,
                          Open(spec.log_path, O_WRONLY | O_CREAT | O_APPEND, "log"));
  SUBLET_ASSIGN_OR_RETURN(UniqueFd null_fd, Open("/dev/null", O_RDONLY, "stdin"));
  SUBLET_ASSIGN_OR_RETURN(Pipe started, MakePipe("started-pipe"));
  SUBLET_ASSIGN_OR_RETURN(Pipe go, MakePipe("go-pipe"));
  const pid_t pid = fork();
  if (pid == 0) {
    RunChild(plan,
             {.log = log_fd.get(), .null = null_fd.get(), .started_write = started.write.get(),
              .go_read = go.read.get(), .go_write = go.write.get()},
             *confinement);
  }
  if (pid < 0) return ErrnoStatus("fork");
  children_.push_back(Child{.pid = pid, .pid_file = spec.pid_file});
  started.write.reset();  // now only the child holds it
  SUBLET_RETURN_IF_ERROR(AwaitStarted(started.read.get()));
  if (!spec.pid_file.empty()) SUBLET_RETURN_IF_ERROR(WritePidFile(spec.pid_file, pid));
  SUBLET_RETURN_IF_ERROR(ReleaseChild(go.write.get()));
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
  while (pipe_read_.valid() && read(pipe_read_.get(), drain, sizeof(drain)) > 0) {
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
