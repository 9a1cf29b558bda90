// Child daemons for `sublet up`, and the signals that stop it. Linux only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace sublet::client::internal {

// One child process. It runs in its own process group (so a Ctrl-C reaches
// only `sublet up`, which then stops the children in order), reads /dev/null,
// writes stdout and stderr to a log file, and gets SIGTERM if its parent dies.
// Not thread-safe. Destroying a running child does not stop it.
class ChildProcess {
 public:
  // `argv[0]` is the executable's path; `env` is its whole environment.
  static absl::StatusOr<ChildProcess> Spawn(std::string name, const std::vector<std::string>& argv,
                                            const std::vector<std::string>& env,
                                            const std::string& log_path);

  const std::string& name() const { return name_; }
  const std::string& log_path() const { return log_path_; }
  pid_t pid() const { return pid_; }

  // Reaps the child if it has exited, without blocking; true once it has.
  bool Poll();
  bool exited() const { return wait_status_.has_value(); }
  // "exit code 1" / "killed by signal 9"; "running" before it exited.
  std::string DescribeExit() const;
  // Sends `signal` unless the child has already been reaped.
  void Signal(int signal);

 private:
  ChildProcess(std::string name, std::string log_path, pid_t pid)
      : name_(std::move(name)), log_path_(std::move(log_path)), pid_(pid) {}

  std::string name_;
  std::string log_path_;
  pid_t pid_;
  std::optional<int> wait_status_;
};

// Blocks SIGINT and SIGTERM for the whole process while alive (threads
// started later inherit the mask), so they can be taken synchronously with
// Wait() instead of by a handler touching globals. Children started by
// ChildProcess::Spawn get the default mask back.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The stop signal that arrived within `timeout`, or nullopt.
  std::optional<int> Wait(std::chrono::milliseconds timeout);

 private:
  sigset_t previous_;
};

// The last `max_lines` lines of a text file ("" when unreadable).
std::string TailFile(const std::string& path, int max_lines);

}  // namespace sublet::client::internal
