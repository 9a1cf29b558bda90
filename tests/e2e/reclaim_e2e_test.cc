// End to end: the reclaim transaction with real daemons, driven through the
// CLI, with stand-in ranks (tests/e2e/reclaim_rank.cc) that obey the
// preemption contract. The same scenarios with real sublet-train ranks are in
// train_reclaim_e2e_test.cc.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_join.h"
#include "tests/e2e/test_cluster.h"

namespace sublet::e2e {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

std::string RankSpec(const std::string& name, const std::string& args, const std::string& extra) {
  return "name: " + name + "\nresources: {nodes: 2, gpus_per_node: 2}\ncommand: [" +
         Bin("../tests/reclaim_rank") + ", " + args + "]\n" + extra;
}

json Reclaim(const TestCluster& cluster, const std::vector<std::string>& args) {
  std::vector<std::string> full = {"reclaim"};
  full.insert(full.end(), args.begin(), args.end());
  return cluster.Json(full, "admin-token");
}

json NodeByName(const TestCluster& cluster, const std::string& name) {
  json nodes = cluster.Json({"nodes"}, "admin-token");
  for (const json& n : nodes["nodes"]) {
    if (n["name"] == name) return n;
  }
  ADD_FAILURE() << "no node " << name;
  return json();
}

void WaitForFile(const std::string& path) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!std::filesystem::exists(path) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(std::filesystem::exists(path)) << path;
}

TEST(ReclaimE2eTest, ReclaimedNodeIsHandedOverAfterTheCheckpointAndTheJobResumesOnTheOther) {
  TestCluster cluster({});
  std::string id = cluster.Submit(cluster.WriteSpec(
      "ack", RankSpec("ack", "'80', '4', ack", "elastic: {min_nodes: 1}\n")));
  cluster.WaitForJob(id, [](const json& j) {
    return !j["progress"].is_null() && j["progress"]["step"] >= 6;
  });

  json r = Reclaim(cluster, {"--nodes", "node-1", "--deadline", "30s", "--reason", "eval"});
  EXPECT_EQ(r["state"], "reclaimed");
  ASSERT_EQ(r["jobs"].size(), 1u);
  EXPECT_EQ(r["jobs"][0]["job_id"], id);
  EXPECT_EQ(r["jobs"][0]["state"], "acknowledged");
  const int acked = r["jobs"][0]["checkpoint_step"].get<int>();
  EXPECT_GE(acked, 6);
  EXPECT_EQ(NodeByName(cluster, "node-1")["state"], "reclaimed");

  json job = cluster.WaitForState(id, "succeeded");
  EXPECT_EQ(job["preemptions"], 1);
  EXPECT_EQ(job["restarts"], 0);
  EXPECT_EQ(job["attempt"], 2);
  EXPECT_EQ(job["resume_step"], acked);
  EXPECT_EQ(job["nodes"], json::array({"node-0"})) << "elastic: resumed on the node left";
  EXPECT_TRUE(HasEvent(job, "preempting"));
  EXPECT_TRUE(HasEvent(job, "acknowledged"));
  EXPECT_TRUE(HasEvent(job, "requeued"));
  EXPECT_GT(job["gpu_seconds"].get<double>(), 0);
  // The resumed attempt started where the acknowledged checkpoint was.
  CommandResult log = cluster.Sublet({"logs", id, "--rank", "0"});
  EXPECT_THAT(log.out, HasSubstr("resumed from step " + std::to_string(acked) + " (world 2)"));

  // Released capacity takes work again.
  cluster.Json({"release", "--nodes", "node-1"}, "admin-token");
  EXPECT_EQ(NodeByName(cluster, "node-1")["state"], "ready");
  std::string next = cluster.Submit(cluster.WriteSpec("next", RankSpec("next", "'3', '1', ack", "")));
  json done = cluster.WaitForState(next, "succeeded");
  EXPECT_EQ(done["nodes"], json::array({"node-0", "node-1"}));
}

TEST(ReclaimE2eTest, RankThatIgnoresTheNoticeIsKilledAtTheDeadlineAndResumesFromItsLastCheckpoint) {
  TestCluster cluster({});
  std::string id = cluster.Submit(cluster.WriteSpec(
      "deaf", RankSpec("deaf", "'100000', '3', ignore", "elastic: {min_nodes: 1}\n")));
  json running = cluster.WaitForJob(id, [](const json& j) {
    return !j["last_checkpoint_step"].is_null() && j["last_checkpoint_step"] >= 6;
  });
  json r = Reclaim(cluster, {"--nodes", "node-1", "--deadline", "1s", "--reason", "urgent"});
  EXPECT_EQ(r["state"], "reclaimed");
  EXPECT_EQ(r["jobs"][0]["state"], "killed");
  json job = cluster.WaitForJob(id, [](const json& j) {
    return j["state"] == "running" && j["attempt"] == 2;
  });
  EXPECT_EQ(job["restarts"], 0);
  EXPECT_EQ(job["preemptions"], 1);
  EXPECT_GE(job["resume_step"].get<int>(), 6);
  EXPECT_EQ(job["resume_step"].get<int>() % 3, 0) << "a committed checkpoint, not the kill step";
  EXPECT_TRUE(HasEvent(job, "preempt_killed"));
  EXPECT_GT(job["gpu_seconds_lost"].get<double>(), 0);
  cluster.Json({"cancel", id});
}

TEST(ReclaimE2eTest, TheNoticeAlsoReachesARankThroughTheWorkersControlEndpoint) {
  TestCluster cluster({});
  std::string id = cluster.Submit(cluster.WriteSpec(
      "ctl", RankSpec("ctl", "'100000', '4', control", "")));
  cluster.WaitForJob(id, [](const json& j) {
    return !j["progress"].is_null() && j["progress"]["step"] >= 2;
  });
  json r = Reclaim(cluster, {"--nodes", "node-0", "--deadline", "30s", "--reason", "ctl"});
  EXPECT_EQ(r["jobs"][0]["state"], "acknowledged") << "SIGUSR1 was ignored; the message did it";
  cluster.Json({"cancel", id});
}

TEST(ReclaimE2eTest, OnlyAdminsMayReclaimOrRelease) {
  TestCluster cluster({});
  cluster.WaitForReadyNodes(2);
  CommandResult r = cluster.Sublet(
      {"reclaim", "--nodes", "node-1", "--deadline", "10s", "--reason", "mine now"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.err, HasSubstr("only admins may reclaim"));
  EXPECT_EQ(cluster.Sublet({"release", "--nodes", "node-1"}).exit_code, 4);
  EXPECT_EQ(NodeByName(cluster, "node-1")["state"], "ready");
  CommandResult bad = cluster.Sublet({"reclaim", "--deadline", "10s", "--reason", "x"},
                                     "admin-token");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--nodes"));
}

// Every refused reclaim is all-or-nothing: the running job gets no notice and
// keeps its nodes, no node changes state, no reclaim exists; each refusal
// exits with the DESIGN.md code naming what was wrong, and is audited.
TEST(ReclaimE2eTest, RefusedReclaimsLeaveTheRunningJobAndItsNodesAlone) {
  TestCluster cluster({});
  const std::string gate = cluster.shared_dir() + "/refused-gate";
  std::string id = cluster.Submit(cluster.WriteSpec(
      "steady", RankSpec("steady", "'100000', '5', gate, " + gate, "")));
  cluster.WaitForJob(id, [](const json& j) {
    return !j["progress"].is_null() && j["progress"]["step"] >= 2;
  });
  struct Refusal {
    std::vector<std::string> args;
    int exit_code;
    std::string names;
  };
  const std::vector<Refusal> refusals = {
      {{"--nodes", "node-1,node-9", "--deadline", "30s", "--reason", "x"}, 3, "node node-9 not found"},
      {{"--nodes", "node-1,node-1", "--deadline", "30s", "--reason", "x"}, 2, "named twice"},
      {{"--gpus", "99", "--deadline", "30s", "--reason", "x"}, 2, "only 4 GPUs"},
      {{"--nodes", "node-1", "--gpus", "2", "--deadline", "30s", "--reason", "x"}, 2, "exactly one"},
      {{"--nodes", "node-1", "--deadline", "0s", "--reason", "x"}, 2, "--deadline"},
      {{"--nodes", "node-1", "--deadline", "30s", "--reason", ""}, 2, "--reason"},
  };
  for (const Refusal& r : refusals) {
    std::vector<std::string> args = {"reclaim"};
    args.insert(args.end(), r.args.begin(), r.args.end());
    CommandResult result = cluster.Sublet(args, "admin-token");
    EXPECT_EQ(result.exit_code, r.exit_code) << absl::StrJoin(r.args, " ") << ": " << result.err;
    EXPECT_THAT(result.err, HasSubstr(r.names)) << absl::StrJoin(r.args, " ");
  }
  json job = cluster.Json({"show", id});
  EXPECT_EQ(job["state"], "running");
  EXPECT_EQ(job["attempt"], 1);
  EXPECT_EQ(job["preemptions"], 0);
  EXPECT_EQ(job["nodes"], json::array({"node-0", "node-1"}));
  EXPECT_FALSE(HasEvent(job, "preempting"));
  for (const char* rank : {"0", "1", "2", "3"}) {
    EXPECT_FALSE(std::filesystem::exists(gate + ".noticed." + rank))
        << "a refused reclaim sent rank " << rank << " a notice";
  }
  EXPECT_EQ(NodeByName(cluster, "node-0")["state"], "ready");
  EXPECT_EQ(NodeByName(cluster, "node-1")["state"], "ready");
  EXPECT_EQ(cluster.Json({"reclaims"}, "admin-token")["reclaims"].size(), 0u);
  int audited = 0;
  const json audit = cluster.Json({"audit"}, "admin-token");
  for (const json& e : audit["entries"]) audited += e["action"] == "reclaim_refused" ? 1 : 0;
  // The ones that reached the coordinator (the CLI refuses an empty reason
  // and a zero deadline itself, before any connection, where it can).
  EXPECT_GE(audited, 4) << audit.dump();

  // The same job does take a valid reclaim: the checks above could fail.
  Reclaim(cluster, {"--nodes", "node-1", "--deadline", "60s", "--reason", "now", "--no-wait"});
  WaitForFile(gate + ".noticed.0");
  std::ofstream(gate) << "go\n";
  cluster.WaitForState(id, "pending");
  cluster.Json({"cancel", id});
}

TEST(ReclaimE2eTest, GpuCountReclaimPicksTheLowPriorityJobAndReleaseLetsItRunAgain) {
  TestCluster cluster({});
  auto one_node = [&](const std::string& name, const std::string& priority) {
    return cluster.Submit(cluster.WriteSpec(
        name, "name: " + name + "\nresources: {nodes: 1, gpus_per_node: 2}\npriority: " + priority +
                  "\ncommand: [" + Bin("../tests/reclaim_rank") + ", '100000', '5', ack]\n"));
  };
  std::string high = one_node("high", "high");
  cluster.WaitForState(high, "running");
  std::string low = one_node("low", "low");
  json low_job = cluster.WaitForState(low, "running");
  const std::string low_node = low_job["nodes"][0];

  json r = Reclaim(cluster, {"--gpus", "2", "--deadline", "20s", "--reason", "capacity"});
  EXPECT_EQ(r["nodes"][0]["name"], low_node);
  ASSERT_EQ(r["jobs"].size(), 1u);
  EXPECT_EQ(r["jobs"][0]["job_id"], low);
  EXPECT_THAT(r["jobs"][0]["why"].get<std::string>(), HasSubstr("fewest jobs"));
  json low_show = cluster.WaitForState(low, "pending");
  EXPECT_THAT(low_show["preempt_why"].get<std::string>(), HasSubstr("capacity"));
  EXPECT_EQ(cluster.Json({"show", high})["state"], "running");

  json released = cluster.Json({"release", r["id"]}, "admin-token");
  EXPECT_EQ(released["reclaims"][0]["state"], "released");
  json again = cluster.WaitForJob(low, [](const json& j) {
    return j["state"] == "running" && j["attempt"] == 2;
  });
  EXPECT_EQ(again["nodes"][0], low_node);
  json list = cluster.Json({"reclaims"}, "admin-token");
  EXPECT_EQ(list["reclaims"].size(), 1u);
  cluster.Json({"cancel", high});
  cluster.Json({"cancel", low});
}

TEST(ReclaimE2eTest, CoordinatorKilledBetweenNoticeAndAcknowledgementFinishesTheTransaction) {
  TestCluster cluster({});
  const std::string gate = cluster.shared_dir() + "/gate";
  std::string id = cluster.Submit(cluster.WriteSpec(
      "gated", RankSpec("gated", "'100000', '4', gate, " + gate, "elastic: {min_nodes: 1}\n")));
  cluster.WaitForJob(id, [](const json& j) {
    return !j["progress"].is_null() && j["progress"]["step"] >= 2;
  });
  json r = Reclaim(cluster,
                   {"--nodes", "node-1", "--deadline", "60s", "--reason", "crash", "--no-wait"});
  const std::string rid = r["id"];
  WaitForFile(gate + ".noticed.0");  // rank 0 got the notice and is "saving"

  cluster.KillCoordinator(SIGKILL);
  cluster.StartCoordinator();
  std::ofstream(gate) << "go\n";

  json job = cluster.WaitForJob(id, [](const json& j) {
    return j["preemptions"] == 1 && j["state"] == "running";
  });
  EXPECT_EQ(job["restarts"], 0);
  json after;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  do {
    after = cluster.Json({"reclaims", rid}, "admin-token")["reclaims"][0];
    if (after["state"] == "reclaimed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(after["state"], "reclaimed");
  EXPECT_EQ(after["jobs"][0]["state"], "acknowledged");
  EXPECT_EQ(NodeByName(cluster, "node-1")["state"], "reclaimed");
  cluster.Json({"cancel", id});
}

}  // namespace
}  // namespace sublet::e2e
