// End to end: a real coordinator and real workers on loopback, driven through
// the `sublet` CLI exactly as a tenant or admin would.
#include <signal.h>

#include <fstream>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/e2e/test_cluster.h"

namespace sublet::e2e {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

std::string RankSpec(const std::string& name, const std::string& script, int nodes = 2,
                      int gpus = 2, int max_restarts = 0) {
  return "name: " + name + "\nresources: {nodes: " + std::to_string(nodes) +
         ", gpus_per_node: " + std::to_string(gpus) + "}\ncommand: [sh, -c, '" + script +
         "']\nmax_restarts: " + std::to_string(max_restarts) + "\n";
}

std::map<std::string, std::string> ParseEnv(const std::string& log) {
  std::map<std::string, std::string> env;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

class ServiceE2eTest : public ::testing::Test {
 protected:
  TestCluster cluster_{TestCluster::Options{}};
};

TEST_F(ServiceE2eTest, TwoNodeJobRanksSeeConsistentEnvironmentAndSucceed) {
  std::string id = cluster_.Submit(cluster_.WriteSpec(
      "env", RankSpec("env", "env | grep -E \"^(SUBLET_|RANK|WORLD_SIZE|LOCAL_|MASTER_|"
                             "CUDA_VISIBLE)\" | sort")));
  json job = cluster_.WaitForState(id, "succeeded");
  EXPECT_EQ(job["attempt"], 1);
  EXPECT_EQ(job["nodes"], json({"node-0", "node-1"}));
  std::set<std::string> master, rendezvous, ranks;
  for (int rank = 0; rank < 4; ++rank) {
    CommandResult logs = cluster_.Sublet({"logs", id, "--rank", std::to_string(rank)});
    ASSERT_EQ(logs.exit_code, 0) << logs.err;
    auto env = ParseEnv(logs.out);
    EXPECT_EQ(env["SUBLET_RANK"], std::to_string(rank));
    EXPECT_EQ(env["RANK"], std::to_string(rank));
    EXPECT_EQ(env["WORLD_SIZE"], "4");
    EXPECT_EQ(env["SUBLET_WORLD_SIZE"], "4");
    EXPECT_EQ(env["LOCAL_RANK"], std::to_string(rank % 2));
    EXPECT_EQ(env["SUBLET_LOCAL_WORLD_SIZE"], "2");
    EXPECT_EQ(env["SUBLET_NODE_RANK"], std::to_string(rank / 2));
    EXPECT_EQ(env["SUBLET_NODE_NAME"], "node-" + std::to_string(rank / 2));
    EXPECT_EQ(env["SUBLET_JOB_ID"], id);
    EXPECT_EQ(env["SUBLET_ATTEMPT"], "1");
    EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], std::to_string(rank % 2));
    EXPECT_THAT(env["SUBLET_CHECKPOINT_DIR"], HasSubstr("/acme/" + id + "/checkpoints"));
    EXPECT_FALSE(env["SUBLET_CONTROL"].empty());
    master.insert(env["MASTER_ADDR"] + ":" + env["MASTER_PORT"]);
    rendezvous.insert(env["SUBLET_RENDEZVOUS"]);
  }
  EXPECT_EQ(master.size(), 1u);
  EXPECT_EQ(rendezvous.size(), 1u);
}

TEST_F(ServiceE2eTest, TenantsSeeTheirOwnRowAndAdminsEveryTenants) {
  std::string id = cluster_.Submit(cluster_.WriteSpec("hold", RankSpec("hold", "sleep 600", 1, 2)));
  cluster_.WaitForState(id, "running");
  nlohmann::json mine = cluster_.Json({"tenants"});
  ASSERT_EQ(mine["tenants"].size(), 1u) << mine.dump();
  EXPECT_EQ(mine["tenants"][0]["name"], "acme");
  EXPECT_EQ(mine["tenants"][0]["in_use_gpus"], 2);
  EXPECT_EQ(mine["tenants"][0]["quota_gpus"], nullptr);
  EXPECT_EQ(mine["policies"], false);
  EXPECT_EQ(mine["pool_gpus"], 4);
  nlohmann::json all = cluster_.Json({"tenants"}, "admin-token");
  std::vector<std::string> names;
  for (const auto& t : all["tenants"]) names.push_back(t["name"]);
  EXPECT_THAT(names, ::testing::ElementsAre("acme", "globex"));
  CommandResult table = cluster_.Sublet({"tenants"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("no quotas or fair share configured"));
}

TEST_F(ServiceE2eTest, JobTooLargeToFitStaysPendingWithReason) {
  std::string id = cluster_.Submit(cluster_.WriteSpec("big", RankSpec("big", "true", 3, 2)));
  json job = cluster_.WaitForJob(id, [](const json& j) {
    return j["reason"].get<std::string>().find("needs 3 nodes") != std::string::npos;
  });
  EXPECT_EQ(job["state"], "pending");
  EXPECT_EQ(job["reason"], "needs 3 nodes with 2 GPUs; the cluster has 2 such ready nodes");
  EXPECT_EQ(job["queue_position"], 1);
  CommandResult jobs = cluster_.Sublet({"jobs"});
  EXPECT_THAT(jobs.out, HasSubstr("pending #1")) << jobs.err;
}

TEST_F(ServiceE2eTest, CancelStopsRanksAndFreesTheirGpus) {
  std::string id = cluster_.Submit(cluster_.WriteSpec("sleep", RankSpec("sleep", "sleep 600")));
  cluster_.WaitForState(id, "running");
  json cancelled = cluster_.Json({"cancel", id});
  EXPECT_EQ(cancelled["state"], "cancelled");
  cluster_.WaitForJob(id, [](const json& j) {
    for (const json& r : j["ranks"]) {
      if (r["state"] != "exited") return false;
    }
    return true;
  });
  json nodes = cluster_.Json({"nodes"}, "admin-token");
  for (const json& n : nodes["nodes"]) EXPECT_EQ(n["gpus_free"], 2) << n.dump();
}

TEST_F(ServiceE2eTest, FailingRankRestartsGangUntilMaxRestartsThenFails) {
  std::string id = cluster_.Submit(cluster_.WriteSpec(
      "fail", RankSpec("fail", "if [ $SUBLET_RANK = 1 ]; then exit 3; fi; sleep 600", 2, 2, 2)));
  json job = cluster_.WaitForState(id, "failed");
  EXPECT_EQ(job["restarts"], 2);
  EXPECT_EQ(job["attempt"], 3);
  EXPECT_THAT(job["reason"].get<std::string>(), HasSubstr("exited with code 3"));
  EXPECT_THAT(job["reason"].get<std::string>(), HasSubstr("max_restarts (2) reached"));
  EXPECT_TRUE(HasEvent(job, "rank_failed"));
  EXPECT_TRUE(HasEvent(job, "restarting"));
}

TEST_F(ServiceE2eTest, TenantsSeeOnlyTheirOwnJobs) {
  std::string id = cluster_.Submit(cluster_.WriteSpec("mine", RankSpec("mine", "sleep 600")));
  EXPECT_EQ(cluster_.Sublet({"show", id}, "globex-token").exit_code, 3);
  EXPECT_EQ(cluster_.Sublet({"cancel", id}, "globex-token").exit_code, 3);
  EXPECT_EQ(cluster_.Sublet({"logs", id}, "globex-token").exit_code, 3);
  EXPECT_TRUE(cluster_.Json({"jobs"}, "globex-token")["jobs"].empty());
  EXPECT_EQ(cluster_.Json({"jobs"}, "acme-token")["jobs"].size(), 1u);
  EXPECT_EQ(cluster_.Json({"jobs"}, "admin-token")["jobs"].size(), 1u);
  EXPECT_EQ(cluster_.Json({"show", id}, "admin-token")["tenant"], "acme");
}

TEST_F(ServiceE2eTest, UnknownAndWrongKindTokensAreRefused) {
  EXPECT_EQ(cluster_.Sublet({"jobs"}, "not-a-token").exit_code, 4);
  EXPECT_EQ(cluster_.Sublet({"jobs"}, "node-token").exit_code, 4);
  std::string spec = cluster_.WriteSpec("x", RankSpec("x", "true"));
  EXPECT_EQ(cluster_.Sublet({"submit", spec}, "admin-token").exit_code, 4);
}

TEST_F(ServiceE2eTest, InvalidSpecIsRefusedNamingTheField) {
  std::string spec = cluster_.WriteSpec(
      "bad", "name: bad\nresources: {nodes: 1, gpus_per_node: 2}\ncommand: [true]\n"
             "parallelism: {tensor: 3}\n");
  CommandResult r = cluster_.Sublet({"submit", spec});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("parallelism.tensor"));
  std::string wide = cluster_.WriteSpec("wide", RankSpec("wide", "true", 1, 4));
  r = cluster_.Sublet({"submit", wide});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("resources.gpus_per_node"));
}

TEST_F(ServiceE2eTest, RanksKeepRunningAcrossCoordinatorKill) {
  std::string flag = cluster_.shared_dir() + "/go";
  std::string id = cluster_.Submit(cluster_.WriteSpec(
      "wait", RankSpec("wait", "while [ ! -e " + flag + " ]; do sleep 0.1; done")));
  cluster_.WaitForState(id, "running");
  cluster_.KillCoordinator(SIGKILL);
  cluster_.StartCoordinator();
  std::ofstream(flag) << "go";
  json job = cluster_.WaitForState(id, "succeeded");
  EXPECT_EQ(job["attempt"], 1);
  EXPECT_EQ(job["restarts"], 0);
}

TEST_F(ServiceE2eTest, AcknowledgedSubmissionsSurviveCoordinatorKill) {
  std::vector<std::string> ids;
  std::string spec = cluster_.WriteSpec("huge", RankSpec("huge", "true", 5, 2));
  for (int i = 0; i < 5; ++i) ids.push_back(cluster_.Submit(spec));
  cluster_.KillCoordinator(SIGKILL);
  cluster_.StartCoordinator();
  for (const std::string& id : ids) cluster_.WaitForState(id, "pending");
  EXPECT_EQ(cluster_.Json({"jobs"})["jobs"].size(), 5u);
}

}  // namespace
}  // namespace sublet::e2e
