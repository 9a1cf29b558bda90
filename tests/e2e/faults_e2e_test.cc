// End to end: node loss and the local cluster command.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/e2e/test_cluster.h"

namespace sublet::e2e {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

// Processes of `job`'s attempt `attempt` (the ranks and whatever they started).
std::vector<int> ProcessesOfAttempt(const std::string& job, const std::string& attempt) {
  std::vector<int> pids;
  for (JobProcess& p : ProcessesOfJob(job)) {
    if (p.env["SUBLET_ATTEMPT"] == attempt) pids.push_back(p.pid);
  }
  return pids;
}

std::string EventMessage(const json& job, const std::string& kind) {
  for (const json& e : job["events"]) {
    if (e["kind"] == kind) return e["message"].get<std::string>();
  }
  return "";
}

TEST(NodeLossE2eTest, SilentNodeIsLostAndItsGangIsRequeuedWithoutCountingARestart) {
  TestCluster::Options options;
  options.heartbeat_timeout = "2s";
  options.stop_grace = "1s";
  TestCluster cluster(options);
  std::string id = cluster.Submit(cluster.WriteSpec(
      "gang", "name: gang\nresources: {nodes: 2, gpus_per_node: 2}\ncommand: [sleep, '600']\n"));
  cluster.WaitForState(id, "running");
  cluster.KillWorker(1, SIGKILL);
  json job = cluster.WaitForJob(id, [](const json& j) { return HasEvent(j, "node_lost"); });
  EXPECT_EQ(job["restarts"], 0);
  EXPECT_THAT(EventMessage(job, "node_lost"), HasSubstr("node node-1 was lost"));
  json nodes = cluster.Json({"nodes"}, "admin-token");
  EXPECT_EQ(nodes["nodes"][1]["state"], "lost");
  // The worker comes back: it kills the ranks its previous process left and
  // the job runs again as a new attempt.
  cluster.StartWorker(1);
  job = cluster.WaitForJob(id, [](const json& j) {
    return j["state"] == "running" && j["attempt"] == 2;
  });
  EXPECT_EQ(job["restarts"], 0);
  // No process of the first attempt lives once the second runs: neither the
  // lost node's ranks nor the ones its gang partner was told to stop.
  EXPECT_THAT(ProcessesOfAttempt(id, "1"), ::testing::IsEmpty());
  // And the scan sees ranks: the second attempt's show up (the job is
  // "running" once placed, a moment before its workers have started them).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (ProcessesOfAttempt(id, "2").empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a condition
  }
  EXPECT_THAT(ProcessesOfAttempt(id, "2"), ::testing::Not(::testing::IsEmpty()));
  EXPECT_THAT(ProcessesOfAttempt(id, "1"), ::testing::IsEmpty());
  cluster.Json({"cancel", id});
}

// An operator's `systemctl stop` (SIGTERM) or a Ctrl-C (SIGINT) is a clean
// shutdown: exit 0, nothing lost, and a restart picks the job up again.
TEST(ShutdownE2eTest, CoordinatorExitsZeroOnSigtermAndSigintAndKeepsItsJobs) {
  TestCluster::Options options;
  options.workers = 1;
  TestCluster cluster(options);
  std::string id = cluster.Submit(cluster.WriteSpec(
      "sleepy", "name: sleepy\nresources: {nodes: 1, gpus_per_node: 1}\ncommand: [sleep, '600']\n"));
  cluster.WaitForState(id, "running");
  for (int signal : {SIGTERM, SIGINT}) {
    int status = cluster.KillCoordinator(signal);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "signal " << signal << ": wait status " << status;
    cluster.StartCoordinator();
    json job = cluster.WaitForState(id, "running");
    EXPECT_EQ(job["attempt"], 1) << "the rank kept running through the restart";
  }
  cluster.Json({"cancel", id});
}

// Starts `sublet up ARGS` with output in dir/NAME.out and .err, and waits
// (bounded) for the context file it writes once every node is ready.
pid_t StartUp(const std::string& dir, const std::map<std::string, std::string>& env,
              std::vector<std::string> args, const std::string& name) {
  args.insert(args.begin(), {Bin("sublet"), "up"});
  pid_t up = SpawnTo(args, env, dir + "/" + name + ".out", dir + "/" + name + ".err");
  EXPECT_GT(up, 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!std::filesystem::exists(dir + "/xdg/sublet/context.yaml") &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return up;
}

// Ctrl-C to `sublet up`; true when it exited 0.
bool StopUp(pid_t up) {
  kill(up, SIGINT);
  int status = 0;
  waitpid(up, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST(SubletUpE2eTest, LocalClusterRunsHelloExampleWithoutFlags) {
  std::string tmpl = ::testing::TempDir() + "/sublet-up-XXXXXX";
  std::string dir = mkdtemp(tmpl.data());
  std::map<std::string, std::string> env = {{"HOME", dir}, {"XDG_CONFIG_HOME", dir + "/xdg"}};
  // A free port, so a developer's own `sublet up` on 7700 does not interfere.
  std::string listen = "tcp://127.0.0.1:" + std::to_string(27700 + getpid() % 1000);
  pid_t up = StartUp(dir, env,
                     {"--workers", "2", "--gpus", "2", "--listen", listen, "--state-dir",
                      dir + "/cluster"},
                     "up");
  ASSERT_GT(up, 0);
  ASSERT_TRUE(std::filesystem::exists(dir + "/xdg/sublet/context.yaml"));
  CommandResult submit = e2e::Run({Bin("sublet"), "submit",
                              std::string(SUBLET_SOURCE_DIR) + "/examples/jobs/hello.yaml", "--wait"},
                             env, dir);
  EXPECT_EQ(submit.exit_code, 0) << submit.out << submit.err;
  std::string id = submit.out.substr(0, submit.out.find('\n'));
  CommandResult logs = e2e::Run({Bin("sublet"), "logs", id, "--rank", "3"}, env, dir);
  EXPECT_THAT(logs.out, HasSubstr("hello from rank 3 of 4"));
  EXPECT_TRUE(StopUp(up));
  EXPECT_FALSE(std::filesystem::exists(dir + "/xdg/sublet/context.yaml"));
}

// A second `sublet up` on a taken address stops before starting any worker:
// its node-1 must never reach the first cluster's coordinator.
TEST(SubletUpE2eTest, ASecondClusterOnATakenAddressStopsWithoutStartingWorkers) {
  std::string tmpl = ::testing::TempDir() + "/sublet-up2-XXXXXX";
  std::string dir = mkdtemp(tmpl.data());
  std::map<std::string, std::string> env = {{"HOME", dir}, {"XDG_CONFIG_HOME", dir + "/xdg"}};
  std::string listen = "tcp://127.0.0.1:" + std::to_string(28700 + getpid() % 1000);
  pid_t first = StartUp(dir, env,
                        {"--workers", "1", "--gpus", "1", "--listen", listen, "--state-dir",
                         dir + "/first"},
                        "first");
  ASSERT_GT(first, 0);
  ASSERT_TRUE(std::filesystem::exists(dir + "/xdg/sublet/context.yaml"));
  CommandResult second = e2e::Run({Bin("sublet"), "up", "--workers", "1", "--gpus", "1", "--listen",
                                   listen, "--state-dir", dir + "/second"},
                                  env, dir);
  EXPECT_NE(second.exit_code, 0);
  EXPECT_THAT(second.err, HasSubstr("the coordinator could not start on " + listen));
  EXPECT_FALSE(std::filesystem::exists(dir + "/second/node-1.log")) << "no worker was started";
  CommandResult nodes = e2e::Run({Bin("sublet"), "nodes", "-o", "json", "--token", "admin-token"},
                                 env, dir);
  json doc = json::parse(nodes.out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << nodes.out << nodes.err;
  ASSERT_EQ(doc["nodes"].size(), 1u);
  EXPECT_EQ(doc["nodes"][0]["state"], "ready");
  EXPECT_TRUE(StopUp(first));
}

// `sublet up --tenants acme,globex`: one random token per tenant, in the
// banner and in a config only its owner may read; no "dev"; each tenant
// sees only its own jobs.
TEST(SubletUpE2eTest, TenantsFlagGivesEachTenantItsOwnTokenInAPrivateConfig) {
  std::string tmpl = ::testing::TempDir() + "/sublet-up3-XXXXXX";
  std::string dir = mkdtemp(tmpl.data());
  std::map<std::string, std::string> env = {{"HOME", dir}, {"XDG_CONFIG_HOME", dir + "/xdg"}};
  std::string listen = "tcp://127.0.0.1:" + std::to_string(29700 + getpid() % 1000);
  pid_t up = StartUp(dir, env,
                     {"--workers", "1", "--gpus", "1", "--listen", listen, "--state-dir",
                      dir + "/cluster", "--tenants", "acme,globex", "-o", "json"},
                     "up");
  ASSERT_GT(up, 0);
  json banner = json::parse(std::ifstream(dir + "/up.out"), nullptr, false);
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
       banner.is_discarded() && std::chrono::steady_clock::now() < deadline;
       banner = json::parse(std::ifstream(dir + "/up.out"), nullptr, false)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling for the banner
  }
  ASSERT_FALSE(banner.is_discarded());
  ASSERT_EQ(banner["tenants"].size(), 2u) << banner.dump();
  EXPECT_EQ(banner["tenants"][0]["name"], "acme");
  EXPECT_EQ(banner["tenants"][1]["name"], "globex");
  const std::string acme = banner["tenants"][0]["token"], globex = banner["tenants"][1]["token"];
  EXPECT_THAT(acme, ::testing::MatchesRegex("[0-9a-f]{32}"));
  EXPECT_NE(acme, globex);
  EXPECT_EQ(banner["token"], acme) << "the context file's tenant";

  struct stat config;
  ASSERT_EQ(stat((dir + "/cluster/coordinator.yaml").c_str(), &config), 0);
  EXPECT_EQ(config.st_mode & 0777, 0600u);

  const std::string spec = dir + "/one.yaml";
  std::ofstream(spec) << "name: one\nresources: {nodes: 1, gpus_per_node: 1}\ncommand: [true]\n";
  CommandResult submit = e2e::Run({Bin("sublet"), "submit", spec}, env, dir);  // the context: acme
  ASSERT_EQ(submit.exit_code, 0) << submit.err;
  const std::string id = submit.out.substr(0, submit.out.find('\n'));
  EXPECT_EQ(e2e::Run({Bin("sublet"), "show", id, "--token", acme}, env, dir).exit_code, 0);
  EXPECT_EQ(e2e::Run({Bin("sublet"), "show", id, "--token", globex}, env, dir).exit_code, 3);
  EXPECT_EQ(e2e::Run({Bin("sublet"), "jobs", "--token", "dev-token"}, env, dir).exit_code, 4);
  EXPECT_TRUE(StopUp(up));
}

}  // namespace
}  // namespace sublet::e2e
