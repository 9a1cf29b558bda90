// Helpers shared by the worker tests: a temporary directory, file reading,
// and waiting for real events (process exits) with a generous timeout.
#pragma once

#include <poll.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "worker/process_launcher.h"

namespace sublet::worker::testing {

inline constexpr std::chrono::seconds kEventTimeout{20};

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "sublet-worker-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& child) const { return path_ + "/" + child; }

 private:
  std::string path_;
};

// `/bin/sh -c script`, run in `dir` with its output in dir/out.log.
inline LaunchSpec ShellSpec(const TempDir& dir, const std::string& script) {
  LaunchSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.working_dir = dir.path();
  spec.log_path = dir / "out.log";
  return spec;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// Waits until `fd` is readable; false on timeout. Signals (SIGCHLD from the
// ranks) interrupt poll, so it is retried.
inline bool PollReadable(int fd, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) return false;
    pollfd readable{.fd = fd, .events = POLLIN, .revents = 0};
    const int ready = poll(&readable, 1, static_cast<int>(left.count()));
    if (ready > 0) return true;
    if (ready == 0 || errno != EINTR) return false;
  }
}

// Waits on the launcher's wake-up fd until `pid` is reaped; its exit code, or
// nullopt after kEventTimeout.
inline std::optional<int> WaitForExit(ProcessLauncher& launcher, int pid) {
  const auto deadline = std::chrono::steady_clock::now() + kEventTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    for (const ProcessExit& exit : launcher.Reap()) {
      if (exit.pid == pid) return exit.exit_code;
    }
    PollReadable(launcher.wakeup_fd(), std::chrono::seconds(1));
  }
  return std::nullopt;
}

}  // namespace sublet::worker::testing
