// Runs sublet-train (directly or under mpirun) as a child process for the
// end-to-end trainer tests, and reads its --log-json output.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sublet::trainer_testing {

struct ProcessResult {
  int exit_code = -1;  // 128 + N when killed by signal N
  std::string err;     // stderr
};

// Runs argv[0] with argv, the parent's environment plus `env`, and waits.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env = {});

// A running child whose stdout is a pipe, read line by line.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv);
  ~Child();
  // The next line of stdout; false at end of file.
  bool ReadLine(std::string* line);
  void Signal(int sig);
  int Wait();  // exit code, as ProcessResult

 private:
  int pid_ = -1;
  FILE* out_ = nullptr;
};

// `mpirun -np N --oversubscribe sublet-train args...` (np 0: no mpirun).
std::vector<std::string> TrainCommand(int np, const std::vector<std::string>& args);

// Every JSON line of a --log-json file.
std::vector<nlohmann::json> ReadJsonLines(const std::string& path);
// step -> loss, from the step lines.
std::map<int64_t, double> Losses(const std::vector<nlohmann::json>& lines);
// The lines whose "event" is `event`.
std::vector<nlohmann::json> Events(const std::vector<nlohmann::json>& lines, const std::string& event);

// A fresh, empty directory under the test temp dir.
std::string FreshDir(const std::string& name);

}  // namespace sublet::trainer_testing
