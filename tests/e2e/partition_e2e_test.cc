// End to end with workers on separate network hosts (namespaces): a partition
// between a worker and the coordinator that heals before heartbeat_timeout
// changes nothing; one that outlasts it makes the node lost and requeues the
// gang, and when it heals the stale ranks are stopped before anything new
// runs there. Ranks take a lock per GPU and per (job, rank) for their whole
// life, so any overlap is recorded as a violation.
#include <chrono>
#include <fstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/time.h"
#include "tests/e2e/netns.h"
#include "tests/strict_skip.h"
#include "tests/e2e/test_cluster.h"

namespace sublet::e2e {
namespace {

using nlohmann::json;

class PartitionE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto net = TestNetwork::Create(2);
    if (!net.ok()) SUBLET_SKIP_UNLESS_STRICT() << "no network namespaces here: " << net.status();
    net_ = *std::move(net);
  }

  std::unique_ptr<TestCluster> MakeCluster(const std::string& heartbeat_timeout) {
    TestCluster::Options o;
    o.workers = 2;
    o.gpus = 1;
    o.heartbeat_timeout = heartbeat_timeout;
    o.stop_grace = "1s";
    o.listen_host = net_->service_address();
    o.worker_net = {{net_->ns(0), net_->address(0)}, {net_->ns(1), net_->address(1)}};
    return std::make_unique<TestCluster>(o);
  }

  std::string SubmitGang(TestCluster& cluster) {
    return cluster.Submit(cluster.WriteSpec(
        "gang", "name: gang\nresources: {nodes: 2, gpus_per_node: 1}\ncommand: [sh, -c, '" +
                    LockingRank(cluster.shared_dir(), "sleep 600") + "']\nmax_restarts: 0\n"));
  }

  // Seconds since `node` last reported, as the coordinator sees it.
  static double SilentFor(const TestCluster& cluster, const std::string& node) {
    const json nodes = cluster.Json({"nodes"}, "admin-token");
    for (const json& n : nodes["nodes"]) {
      if (n["name"] != node || !n["last_heartbeat"].is_string()) continue;
      absl::Time t;
      std::string err;
      if (!absl::ParseTime(absl::RFC3339_full, n["last_heartbeat"].get<std::string>(), &t, &err)) {
        return 0;
      }
      return absl::ToDoubleSeconds(absl::Now() - t);
    }
    return 0;
  }

  static void WaitUntil(const std::function<bool()>& done, const std::string& what) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
    while (!done()) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "timed out waiting for " << what;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  static std::string Violations(const TestCluster& cluster) {
    std::ifstream in(cluster.shared_dir() + "/violations");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::unique_ptr<TestNetwork> net_;
};

TEST_F(PartitionE2eTest, PartitionShorterThanHeartbeatTimeoutChangesNothing) {
  auto cluster = MakeCluster("30s");
  std::string id = SubmitGang(*cluster);
  cluster->WaitForState(id, "running");
  ASSERT_TRUE(net_->Partition(1).ok());
  WaitUntil([&] { return SilentFor(*cluster, "node-1") > 1.5; }, "node-1 to fall silent");
  ASSERT_TRUE(net_->Heal(1).ok());
  WaitUntil([&] { return SilentFor(*cluster, "node-1") < 1.0; }, "node-1 to report again");
  json job = cluster->Json({"show", id});
  EXPECT_EQ(job["state"], "running");
  EXPECT_EQ(job["attempt"], 1);
  EXPECT_FALSE(HasEvent(job, "node_lost"));
  EXPECT_EQ(cluster->Json({"nodes"}, "admin-token")["nodes"][1]["state"], "ready");
  EXPECT_EQ(Violations(*cluster), "");
  cluster->Json({"cancel", id});
}

TEST_F(PartitionE2eTest, PartitionLongerThanHeartbeatTimeoutRequeuesWithoutDuplicateRanks) {
  auto cluster = MakeCluster("2s");
  std::string id = SubmitGang(*cluster);
  cluster->WaitForState(id, "running");
  ASSERT_TRUE(net_->Partition(1).ok());
  json job = cluster->WaitForJob(id, [](const json& j) { return HasEvent(j, "node_lost"); });
  EXPECT_EQ(job["state"], "pending");
  EXPECT_EQ(job["restarts"], 0);
  EXPECT_EQ(cluster->Json({"nodes"}, "admin-token")["nodes"][1]["state"], "lost");
  // node-1's rank of attempt 1 is still alive behind the partition.
  ASSERT_TRUE(net_->Heal(1).ok());
  job = cluster->WaitForJob(id, [](const json& j) {
    return j["state"] == "running" && j["attempt"] == 2;
  });
  for (const json& r : job["ranks"]) EXPECT_EQ(r["state"], "running");
  EXPECT_EQ(Violations(*cluster), "");
  cluster->Json({"cancel", id});
}

}  // namespace
}  // namespace sublet::e2e
