#include "tests/e2e/test_cluster.h"

#include "protocols/curve.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "fmt/format.h"

extern char** environ;

namespace sublet::e2e {
namespace {

constexpr auto kDeadline = std::chrono::seconds(90);
constexpr auto kPollEvery = std::chrono::milliseconds(50);


std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (std::string& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> EnvWith(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    std::string key = kv.substr(0, kv.find('='));
    if (!extra.count(key)) env.push_back(kv);
  }
  for (const auto& [k, v] : extra) env.push_back(k + "=" + v);
  return env;
}

}  // namespace

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<JobProcess> ProcessesOfJob(const std::string& job) {
  std::vector<JobProcess> found;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    JobProcess p;
    p.pid = std::stoi(name);
    const std::string env = ReadFile(entry.path() / "environ");
    for (size_t start = 0; start < env.size();) {
      size_t end = env.find('\0', start);
      if (end == std::string::npos) end = env.size();
      const std::string kv = env.substr(start, end - start);
      if (size_t eq = kv.find('='); eq != std::string::npos) p.env[kv.substr(0, eq)] = kv.substr(eq + 1);
      start = end + 1;
    }
    if (p.env["SUBLET_JOB_ID"] != job) continue;
    p.comm = ReadFile(entry.path() / "comm");
    if (!p.comm.empty() && p.comm.back() == '\n') p.comm.pop_back();
    found.push_back(std::move(p));
  }
  return found;
}

bool WaitForText(const std::string& path, const std::string& text) {
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (ReadFile(path).find(text) == std::string::npos) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(kPollEvery);
  }
  return true;
}

pid_t SpawnTo(std::vector<std::string> argv, const std::map<std::string, std::string>& env,
              const std::string& out, const std::string& err) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  std::vector<std::string> envs = EnvWith(env);
  std::vector<char*> cargv = CStrings(argv);
  std::vector<char*> cenv = CStrings(envs);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, cargv[0], &actions, nullptr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

std::string Bin(const std::string& name) { return std::string(SUBLET_BIN_DIR) + "/" + name; }

bool HasEvent(const nlohmann::json& job, const std::string& kind) {
  for (const nlohmann::json& e : job["events"]) {
    if (e["kind"] == kind) return true;
  }
  return false;
}

std::string LockingRank(const std::string& dir, const std::string& then) {
  return "exec 9>>" + dir + "/job-$SUBLET_JOB_ID-rank-$SUBLET_RANK; flock -n 9 || echo "
         "\"rank $SUBLET_RANK of job $SUBLET_JOB_ID ran twice\" >>" + dir + "/violations; "
         "exec 8>>" + dir + "/gpu-$SUBLET_NODE_NAME-$CUDA_VISIBLE_DEVICES; flock -n 8 || echo "
         "\"GPU $CUDA_VISIBLE_DEVICES of $SUBLET_NODE_NAME given twice\" >>" + dir +
         "/violations; exec " + then;
}

CommandResult Run(const std::vector<std::string>& argv,
                  const std::map<std::string, std::string>& env, const std::string& scratch) {
  static std::atomic<int> counter{0};
  int n = counter++;
  std::string out = fmt::format("{}/cmd-{}.out", scratch, n);
  std::string err = fmt::format("{}/cmd-{}.err", scratch, n);
  CommandResult result;
  pid_t pid = SpawnTo(argv, env, out, err);
  if (pid < 0) return result;
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = ReadFile(out);
  result.err = ReadFile(err);
  unlink(out.c_str());
  unlink(err.c_str());
  return result;
}

TestCluster::TestCluster(Options options) : options_(std::move(options)) {
  std::string tmpl = ::testing::TempDir() + "/sublet-e2e-XXXXXX";
  dir_ = mkdtemp(tmpl.data());
  // Port 0: the coordinator binds a free port itself and reports it
  // (StartCoordinator); restarts then reuse that port, as a real one would.
  endpoint_ = fmt::format("tcp://{}:0", options_.listen_host);
  // Keys as `sublet up` makes them: the coordinator's in its state dir, each
  // node's in its work dir, listed in the config.
  std::filesystem::create_directories(dir_ + "/coordinator");
  chmod((dir_ + "/coordinator").c_str(), 0700);
  coordinator_key_ =
      protocols::LoadOrCreateKeyFile(dir_ + "/coordinator/coordinator.key")->public_key;
  std::string node_keys;
  for (int i = 0; i < options_.workers; ++i) {
    const std::string work = fmt::format("{}/node-{}", dir_, i);
    std::filesystem::create_directories(work);
    node_keys += fmt::format("    - '{}'\n",
                             protocols::LoadOrCreateKeyFile(work + "/node.key")->public_key);
  }
  std::ofstream(dir_ + "/coordinator.yaml") << fmt::format(
      "storage_root: {}/storage\n"
      "heartbeat_timeout: {}\n"
      "stop_grace: {}\n"
      "restart_backoff: {{base: 0s}}\n"
      "tenants:\n"
      "  - {{name: acme, token: acme-token{}}}\n"
      "  - {{name: globex, token: globex-token{}}}\n"
      "admins:\n"
      "  - {{name: infra, token: admin-token}}\n"
      "workers:\n"
      "  token: node-token\n"
      "  keys:\n"
      "{}"
      "{}",
      dir_, options_.heartbeat_timeout, options_.stop_grace, options_.acme_fields,
      options_.globex_fields, node_keys, options_.extra_config);
  // The worker token stays off every command line.
  std::ofstream(dir_ + "/node-token") << "node-token\n";
  chmod((dir_ + "/node-token").c_str(), 0600);
  std::filesystem::create_directories(shared_dir());
  chmod(shared_dir().c_str(), 01777);
  // LockingRank's files that ranks of different tenants (so different uids)
  // share: made here, writable by all.
  std::vector<std::string> shared_files = {"violations"};
  for (int w = 0; w < options_.workers; ++w) {
    for (int g = 0; g < options_.gpus; ++g) shared_files.push_back(fmt::format("gpu-node-{}-{}", w, g));
  }
  for (const std::string& name : shared_files) {
    const std::string path = shared_dir() + "/" + name;
    std::ofstream{path};
    chmod(path.c_str(), 0666);
  }
  StartCoordinator();
  for (int i = 0; i < options_.workers; ++i) StartWorker(i);
  WaitForReadyNodes(options_.workers);
}

TestCluster::~TestCluster() {
  std::vector<int> ids;
  for (auto& [i, pid] : workers_) ids.push_back(i);
  for (int i : ids) KillWorker(i, SIGTERM);
  if (coordinator_ > 0) KillCoordinator(SIGKILL);
  // Keep the directory (logs, state) of a failed test for a post-mortem.
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir_);
}

pid_t TestCluster::Spawn(const std::vector<std::string>& argv, const std::string& log) const {
  pid_t pid = SpawnTo(argv, {}, dir_ + "/" + log, dir_ + "/" + log);
  EXPECT_GT(pid, 0) << "cannot start " << argv[0];
  return pid;
}

void TestCluster::StartCoordinator() {
  const bool first = endpoint_.ends_with(":0");
  const std::string ready = dir_ + "/coordinator.endpoint";
  std::vector<std::string> argv = {Bin("sublet-coordinator"), "--listen", endpoint_,
                                   "--state-dir", dir_ + "/coordinator", "--config",
                                   dir_ + "/coordinator.yaml"};
  if (first) argv.insert(argv.end(), {"--ready-file", ready});
  coordinator_ = Spawn(argv, "coordinator.log");
  if (!first) return;
  // The endpoint it bound, written once it is listening.
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  std::string bound;
  while ((bound = ReadFile(ready)).empty() || bound.back() != '\n') {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "the coordinator never wrote " << ready << ": "
                    << ReadFile(dir_ + "/coordinator.log");
      return;
    }
    std::this_thread::sleep_for(kPollEvery);
  }
  endpoint_ = bound.substr(0, bound.size() - 1);
}

int TestCluster::KillCoordinator(int signal) {
  kill(coordinator_, signal);
  int status = 0;
  waitpid(coordinator_, &status, 0);
  coordinator_ = -1;
  return status;
}

void TestCluster::StartWorker(int i) {
  std::vector<std::string> argv;
  std::string address = "127.0.0.1";
  if (static_cast<size_t>(i) < options_.worker_net.size()) {
    argv = {"/usr/sbin/ip", "netns", "exec", options_.worker_net[i].first};
    address = options_.worker_net[i].second;
  }
  std::vector<std::string> worker = {
      Bin("sublet-worker"), "--coordinator", endpoint_, "--coordinator-key", coordinator_key_,
      "--name", fmt::format("node-{}", i),
      "--gpus", std::to_string(options_.gpus), "--work-dir", fmt::format("{}/node-{}", dir_, i),
      "--token-file", dir_ + "/node-token", "--heartbeat", "200ms", "--address", address,
      "--share", shared_dir(),
      // The test ranks (build/tests) and sublet-train: a build under /tmp is
      // hidden by each sandbox's private /tmp otherwise.
      "--share", std::filesystem::path(SUBLET_BIN_DIR).parent_path().string()};
  if (auto extra = options_.worker_args.find(i); extra != options_.worker_args.end()) {
    worker.insert(worker.end(), extra->second.begin(), extra->second.end());
  }
  argv.insert(argv.end(), worker.begin(), worker.end());
  workers_[i] = Spawn(argv, fmt::format("worker-{}.log", i));
}

void TestCluster::KillWorker(int i, int signal) {
  auto it = workers_.find(i);
  if (it == workers_.end()) return;
  kill(it->second, signal);
  waitpid(it->second, nullptr, 0);
  workers_.erase(it);
}

CommandResult TestCluster::Sublet(const std::vector<std::string>& args,
                                  const std::string& token) const {
  std::vector<std::string> argv = {Bin("sublet")};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv,
             {{"SUBLET_COORDINATOR", endpoint_}, {"SUBLET_COORDINATOR_KEY", coordinator_key_},
              {"SUBLET_TOKEN", token},
              {"XDG_CONFIG_HOME", dir_ + "/xdg"}, {"HOME", dir_}},
             dir_);
}

nlohmann::json TestCluster::Json(const std::vector<std::string>& args,
                                 const std::string& token) const {
  std::vector<std::string> with = args;
  with.insert(with.end(), {"-o", "json"});
  CommandResult r = Sublet(with, token);
  EXPECT_EQ(r.exit_code, 0) << "sublet " << args[0] << ": " << r.out << r.err;
  nlohmann::json doc = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(doc.is_discarded()) << "not JSON: " << r.out;
  return doc;
}

void TestCluster::WaitForReadyNodes(int count) {
  auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (std::chrono::steady_clock::now() < deadline) {
    CommandResult r = Sublet({"nodes", "-o", "json"}, "admin-token");
    nlohmann::json doc = nlohmann::json::parse(r.out, nullptr, false);
    int ready = 0;
    if (r.exit_code == 0 && !doc.is_discarded()) {
      for (const auto& n : doc["nodes"]) ready += n["state"] == "ready";
    }
    if (ready >= count) return;
    std::this_thread::sleep_for(kPollEvery);
  }
  FAIL() << "nodes did not become ready; see " << dir_;
}

nlohmann::json TestCluster::WaitForJob(const std::string& id,
                                       const std::function<bool(const nlohmann::json&)>& done,
                                       const std::string& token) const {
  auto deadline = std::chrono::steady_clock::now() + kDeadline;
  nlohmann::json job;
  while (std::chrono::steady_clock::now() < deadline) {
    CommandResult r = Sublet({"show", id, "-o", "json"}, token);
    job = nlohmann::json::parse(r.out, nullptr, false);
    if (r.exit_code == 0 && !job.is_discarded() && done(job)) return job;
    std::this_thread::sleep_for(kPollEvery);
  }
  ADD_FAILURE() << "job " << id << " never reached the expected state; last: " << job.dump(2)
                << "\nsee " << dir_;
  return job;
}

nlohmann::json TestCluster::WaitForState(const std::string& id, const std::string& state) const {
  return WaitForJob(id, [&](const nlohmann::json& j) { return j["state"] == state; });
}

std::string TestCluster::WriteSpec(const std::string& name, const std::string& yaml) const {
  std::string path = dir_ + "/" + name + ".yaml";
  std::ofstream(path) << yaml;
  return path;
}

std::string TestCluster::Submit(const std::string& spec_path, const std::string& token) const {
  nlohmann::json doc = Json({"submit", spec_path}, token);
  return doc.value("id", "");
}

}  // namespace sublet::e2e
