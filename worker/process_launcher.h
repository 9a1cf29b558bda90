// Starting, signalling and reaping rank processes, behind an interface so the
// worker's bookkeeping can be tested with a fake.
//
// Every launched process leads its own session and process group (setsid), so
// "signal a rank" means "signal its whole group": helpers it forked die too.
//
// Thread-safety: a launcher is used by one thread (the worker's event loop).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace sublet::worker {

struct LaunchSpec {
  std::vector<std::string> argv;  // argv[0] is looked up on PATH (execvp)
  // Overlaid on the launcher's own environment; later entries win.
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_dir;  // must exist
  std::string log_path;     // stdout and stderr, opened for append (created)
  std::string pid_file;     // "" for none; removed when the process is reaped
};

struct ProcessExit {
  int pid = 0;
  int exit_code = 0;  // the exit status, or 128+N when killed by signal N
};

class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;

  // Starts the process and returns its pid (= its process group id). A
  // command that cannot be executed still starts: it exits with 127 after
  // writing "sublet-worker: cannot run <cmd>: <reason>" into the log. Errors
  // are for what fails before that: Internal (fork, log file, pid file).
  virtual absl::StatusOr<int> Launch(const LaunchSpec& spec) = 0;

  // Sends `signal` to the process group led by `pid`. NotFound when the group
  // has no process left.
  virtual absl::Status SignalGroup(int pid, int signal) = 0;
  // Sends `signal` to the process `pid` only (the rank itself, not helpers it
  // started: a preemption notice is for the program that can checkpoint).
  virtual absl::Status Signal(int pid, int signal) = 0;

  // Collects, without blocking, every launched process that has exited since
  // the last call.
  virtual std::vector<ProcessExit> Reap() = 0;

  // A file descriptor that becomes readable when a launched process may have
  // exited (poll it, then call Reap); -1 if the launcher has none.
  virtual int wakeup_fd() const = 0;
};

// The real thing: fork/exec, SIGCHLD through a self-pipe.
class PosixProcessLauncher final : public ProcessLauncher {
 public:
  struct Options {
    // Prepended to the child's PATH (e.g. the directory holding
    // sublet-worker, so `sublet-train` resolves). "" adds nothing.
    std::string path_prefix;
  };

  explicit PosixProcessLauncher(Options options);
  ~PosixProcessLauncher() override;
  PosixProcessLauncher(const PosixProcessLauncher&) = delete;
  PosixProcessLauncher& operator=(const PosixProcessLauncher&) = delete;

  absl::StatusOr<int> Launch(const LaunchSpec& spec) override;
  absl::Status SignalGroup(int pid, int signal) override;
  absl::Status Signal(int pid, int signal) override;
  // Waits (WNOHANG) on each launched pid rather than on -1, so that several
  // launchers, or a test harness, can have children in one process. After a
  // group leader exits, the rest of its group gets SIGKILL: a rank's helpers
  // never outlive it.
  std::vector<ProcessExit> Reap() override;
  int wakeup_fd() const override { return pipe_read_; }

 private:
  struct Child {
    int pid;
    std::string pid_file;
  };

  Options options_;
  int pipe_read_ = -1;
  int pipe_write_ = -1;
  std::vector<Child> children_;
};

// The child environment: `base` (NAME=VALUE strings, as in environ) without
// its SUBLET_* entries (the worker's token must not reach tenant code),
// overlaid with `overlay`, then PATH prefixed with `path_prefix` when set.
std::vector<std::string> MergeEnvironment(
    const std::vector<std::string>& base,
    const std::vector<std::pair<std::string, std::string>>& overlay,
    const std::string& path_prefix);

// The directory of the running executable (/proc/self/exe), or "".
std::string OwnExecutableDir();

// Converts a waitpid status into an exit code: the status, or 128+N.
int ExitCodeFromWaitStatus(int wait_status);

}  // namespace sublet::worker
