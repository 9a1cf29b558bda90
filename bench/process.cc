#include "bench/process.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

#include "checkpoint/fs.h"

namespace sublet::bench {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string SelfExe() { return fs::read_symlink("/proc/self/exe").string(); }
std::string BinDir() { return fs::path(SelfExe()).parent_path().string(); }

pid_t Spawn(const std::vector<std::string>& argv, const Env& env, const std::string& out) {
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    for (const char* v : {"SUBLET_RANK", "SUBLET_WORLD_SIZE", "SUBLET_LOCAL_RANK",
                          "SUBLET_LOCAL_WORLD_SIZE", "SUBLET_NODE_NAME", "SUBLET_RENDEZVOUS",
                          "SUBLET_CONTROL_ENDPOINT", "SUBLET_CHECKPOINT_DIR",
                          "SUBLET_TENSOR_PARALLEL", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"}) {
      unsetenv(v);
    }
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    const int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  return pid;
}

void WaitAll(const std::vector<pid_t>& pids, std::chrono::seconds limit, const std::string& what) {
  const auto deadline = Clock::now() + limit;
  std::vector<bool> done(pids.size(), false);
  bool failed = false;
  for (size_t left = pids.size(); left > 0;) {
    for (size_t i = 0; i < pids.size(); ++i) {
      int status = 0;
      if (done[i] || waitpid(pids[i], &status, WNOHANG) != pids[i]) continue;
      done[i] = true;
      --left;
      failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    if (left > 0 && Clock::now() > deadline) {
      for (size_t i = 0; i < pids.size(); ++i) {
        if (!done[i]) kill(pids[i], SIGKILL), waitpid(pids[i], nullptr, 0);
      }
      throw std::runtime_error(what + ": timed out");
    }
    if (left > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (failed) throw std::runtime_error(what + ": a process failed");
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

double FsyncedWriteSeconds(const std::string& path, uint64_t bytes, bool keep) {
  const std::vector<char> block(checkpoint::kWritebackBytes, 'x');
  const auto start = Clock::now();
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + path);
  for (uint64_t written = 0; written < bytes;) {
    const size_t n = std::min<uint64_t>(block.size(), bytes - written);
    if (write(fd, block.data(), n) != static_cast<ssize_t>(n)) {
      close(fd);
      throw std::runtime_error("write failed: " + path);
    }
    sync_file_range(fd, static_cast<off_t>(written), static_cast<off_t>(n), SYNC_FILE_RANGE_WRITE);
    written += n;
  }
  const bool synced = fdatasync(fd) == 0;
  close(fd);
  const double s = std::chrono::duration<double>(Clock::now() - start).count();
  if (!keep) fs::remove(path);
  if (!synced) throw std::runtime_error("fdatasync failed: " + path);
  return s;
}

std::vector<double> IterationSeconds(const std::string& log, int skip) {
  std::vector<double> elapsed;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("elapsed_s")) elapsed.push_back(j["elapsed_s"].get<double>());
  }
  std::vector<double> iterations;
  for (size_t i = 1; i < elapsed.size(); ++i) iterations.push_back(elapsed[i] - elapsed[i - 1]);
  if (iterations.size() < static_cast<size_t>(skip) + 2) {
    throw std::runtime_error("sublet-train logged too few steps:\n" + log);
  }
  iterations.erase(iterations.begin(), iterations.begin() + skip);
  return iterations;
}

}  // namespace sublet::bench
