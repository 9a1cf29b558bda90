// TestCluster: real sublet-coordinator and sublet-worker processes on
// loopback, in a fresh directory, driven through the real `sublet` CLI.
// Waiting is done by polling observable state with a deadline, never by
// sleeping a fixed time.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sublet::e2e {

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

class TestCluster {
 public:
  struct Options {
    int workers = 2;
    int gpus = 2;
    std::string heartbeat_timeout = "10s";
    std::string stop_grace = "2s";
    // Where the coordinator listens (its port is picked free).
    std::string listen_host = "127.0.0.1";
    // Per worker, optionally: a network namespace to run it in and the
    // address it has there (tests/e2e/netns.h makes them).
    std::vector<std::pair<std::string, std::string>> worker_net;
    // Extra sublet-worker flags, per worker index (e.g. --no-isolation).
    std::map<int, std::vector<std::string>> worker_args;
    // Extra fields of the tenants' config entries (e.g. ", quota: {gpus: 2}"),
    // and extra top-level config lines.
    std::string acme_fields;
    std::string globex_fields;
    std::string extra_config;
  };
  explicit TestCluster(Options options);
  ~TestCluster();  // SIGKILLs everything it started

  void StartCoordinator();
  // Sends `signal` and reaps it; returns the waitpid status.
  int KillCoordinator(int signal);
  void StartWorker(int i);
  void KillWorker(int i, int signal);
  // Blocks until `count` nodes are ready (fails the test at the deadline).
  void WaitForReadyNodes(int count);

  // Runs `sublet ARGS` with this cluster's address and `token`.
  CommandResult Sublet(const std::vector<std::string>& args,
                       const std::string& token = "acme-token") const;
  // Runs `sublet ARGS -o json`, expects exit 0, returns the document.
  nlohmann::json Json(const std::vector<std::string>& args,
                      const std::string& token = "acme-token") const;
  // Polls `sublet show ID` until `done(job)` holds; returns the job.
  nlohmann::json WaitForJob(const std::string& id,
                            const std::function<bool(const nlohmann::json&)>& done,
                            const std::string& token = "acme-token") const;
  nlohmann::json WaitForState(const std::string& id, const std::string& state) const;

  // Writes a spec file into the cluster directory; returns its path.
  std::string WriteSpec(const std::string& name, const std::string& yaml) const;
  // Submits a spec file, expects success, returns the job id.
  std::string Submit(const std::string& spec_path, const std::string& token = "acme-token") const;

  const std::string& dir() const { return dir_; }
  // A directory every rank sees (sublet-worker --share) and may write, for
  // files a test and its ranks both use; the rest of dir() ranks cannot see.
  std::string shared_dir() const { return dir_ + "/shared"; }
  const std::string& endpoint() const { return endpoint_; }
  const std::string& coordinator_key() const { return coordinator_key_; }

 private:
  pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) const;

  Options options_;
  std::string dir_;
  std::string endpoint_;
  std::string coordinator_key_;
  pid_t coordinator_ = -1;
  std::map<int, pid_t> workers_;
};

// Whether the job (as `sublet show -o json` prints it) has an event of `kind`.
bool HasEvent(const nlohmann::json& job, const std::string& kind);

// A rank command for invariant checks: it holds a lock on its GPU and on its
// (job, rank) slot under `dir` for its whole life, then runs `then` (exec'd,
// so the locks die with it). A lock it cannot take is a witnessed violation,
// appended to `dir`/violations: a GPU given twice, or a rank running twice.
std::string LockingRank(const std::string& dir, const std::string& then);

// The whole file (binary-safe), or "" if it cannot be read.
std::string ReadFile(const std::string& path);
// Polls `path` until it holds `text`; false at the deadline.
bool WaitForText(const std::string& path, const std::string& text);

// A process on this host whose environment names a job.
struct JobProcess {
  int pid = 0;
  std::string comm;  // /proc/PID/comm
  std::map<std::string, std::string> env;
};
// Processes whose environment has SUBLET_JOB_ID=`job`: its ranks and whatever
// they started (read as root, from the host's /proc).
std::vector<JobProcess> ProcessesOfJob(const std::string& job);

// Starts argv with extra environment, appending stdout/stderr to files.
pid_t SpawnTo(std::vector<std::string> argv, const std::map<std::string, std::string>& env,
              const std::string& out, const std::string& err);
// The path of a Sublet binary in the build tree.
std::string Bin(const std::string& name);

// Runs argv with extra environment, capturing stdout and stderr.
CommandResult Run(const std::vector<std::string>& argv,
                  const std::map<std::string, std::string>& env, const std::string& scratch);

}  // namespace sublet::e2e
