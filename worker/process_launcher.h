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
#include "worker/confinement.h"
#include "worker/internal/unique_fd.h"
#include "worker/launch_spec.h"

namespace sublet::worker {

struct ProcessExit {
  int pid = 0;
  int exit_code = 0;  // the exit status, or ExitCodeForSignal(N) when killed by signal N
};

class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;

  // Starts the process and returns its pid (= its process group id). What
  // fails in the child still starts a process, which writes the reason into
  // the log and exits:
  //   - kExitCannotExecute (126) when a setup step or the confinement fails:
  //     "sublet-worker: cannot set up the process: <step>: <reason>";
  //   - kExitCommandNotFound (127) when the working directory cannot be
  //     entered ("sublet-worker: cannot enter <dir>: <reason>") or the
  //     command cannot be executed ("sublet-worker: cannot run <cmd>: <reason>").
  // Errors are for what fails before that: Internal naming the step (log
  // file, pipes, fork, pid file), or what the confinement's Prepare returned.
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

// The real thing: fork/exec, SIGCHLD through a self-pipe. The child runs a
// fixed sequence of checked steps (new session, wait until the parent has
// recorded its pid, stdio, signal state, confinement, working directory,
// exec); the first that fails ends it, fail-closed.
class PosixProcessLauncher final : public ProcessLauncher {
 public:
  struct Options {
    // Prepended to the child's PATH (e.g. the directory holding
    // sublet-worker, so `sublet-train` resolves). "" adds nothing.
    std::string path_prefix;
    // Applied to every launched process (worker/confinement.h); not owned,
    // must outlive the launcher. nullptr confines nothing (NoConfinement).
    Confinement* confinement = nullptr;
    // What of the launcher's own environment a process inherits, beneath
    // LaunchSpec::env: everything but SUBLET_* (MergeEnvironment), or only
    // the allow-list of worker/internal/rank_sandbox.h (confined ranks).
    enum class Environment { kWorkerMinusSublet, kAllowList };
    Environment environment = Environment::kWorkerMinusSublet;
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
  int wakeup_fd() const override { return pipe_read_.get(); }

 private:
  struct Child {
    int pid;
    std::string pid_file;
  };

  Options options_;
  NoConfinement no_confinement_;
  Confinement* confinement_;  // options_.confinement or &no_confinement_
  internal::UniqueFd pipe_read_;
  internal::UniqueFd pipe_write_;
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

// Converts a waitpid status into an exit code: the status, or
// ExitCodeForSignal(N) when killed by signal N.
int ExitCodeFromWaitStatus(int wait_status);

}  // namespace sublet::worker
