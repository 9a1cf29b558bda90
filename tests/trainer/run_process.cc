#include "tests/trainer/run_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace sublet::trainer_testing {
namespace {

int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

[[noreturn]] void Exec(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  _exit(127);
}

void MpiEnvironment() {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 1);
  setenv("OPENBLAS_NUM_THREADS", "1", 1);
}

}  // namespace

ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env) {
  MpiEnvironment();
  char err_path[] = "/tmp/sublet-train-test-XXXXXX";
  const int err_fd = mkstemp(err_path);
  const pid_t pid = fork();
  if (pid == 0) {
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    dup2(err_fd, 2);
    const int null_fd = open("/dev/null", O_WRONLY);
    dup2(null_fd, 1);
    Exec(argv);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ProcessResult r;
  r.exit_code = ExitCode(status);
  std::ifstream in(err_path);
  std::stringstream ss;
  ss << in.rdbuf();
  r.err = ss.str();
  close(err_fd);
  unlink(err_path);
  return r;
}

Child::Child(const std::vector<std::string>& argv) {
  MpiEnvironment();
  int fds[2];
  if (pipe(fds) != 0) return;
  pid_ = fork();
  if (pid_ == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    Exec(argv);
  }
  close(fds[1]);
  out_ = fdopen(fds[0], "r");
}

Child::~Child() {
  if (out_ != nullptr) fclose(out_);
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool Child::ReadLine(std::string* line) {
  if (out_ == nullptr) return false;
  char* buf = nullptr;
  size_t cap = 0;
  const ssize_t n = getline(&buf, &cap, out_);
  if (n > 0) line->assign(buf, buf[n - 1] == '\n' ? n - 1 : n);
  free(buf);
  return n > 0;
}

void Child::Signal(int sig) { kill(pid_, sig); }

int Child::Wait() {
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return ExitCode(status);
}

std::vector<std::string> TrainCommand(int np, const std::vector<std::string>& args) {
  std::vector<std::string> argv;
  if (np > 0) argv = {SUBLET_MPIEXEC, "-np", std::to_string(np), "--oversubscribe"};
  argv.push_back(SUBLET_TRAIN_BIN);
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

std::vector<nlohmann::json> ReadJsonLines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

std::map<int64_t, double> Losses(const std::vector<nlohmann::json>& lines) {
  std::map<int64_t, double> out;
  for (const auto& j : lines) {
    if (j.contains("loss")) out[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  return out;
}

std::vector<nlohmann::json> Events(const std::vector<nlohmann::json>& lines,
                                   const std::string& event) {
  std::vector<nlohmann::json> out;
  for (const auto& j : lines) {
    if (j.contains("event") && j["event"] == event) out.push_back(j);
  }
  return out;
}

std::string FreshDir(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string dir = ::testing::TempDir() + "/sublet-train-" + std::to_string(getpid()) +
                          "-" + info->name() + "-" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace sublet::trainer_testing
