// The Cluster test fixture: a cluster over an in-memory store and a fake
// clock, driven the way the event loop drives it (one committed transaction
// per turn). Shared by cluster_test and reclaim_test.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "coordinator/cluster.h"

namespace sublet::coordinator {

inline protocols::JobSpec Spec(uint32_t nodes, uint32_t gpus, uint32_t max_restarts = 0) {
  protocols::JobSpec s;
  s.name = "test";
  s.nodes = nodes;
  s.gpus_per_node = gpus;
  s.command = {"sh", "-c", "true"};
  s.max_restarts = max_restarts;
  return s;
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *Store::Open(":memory:");
    config_.storage_root = ::testing::TempDir() + "/storage";
    config_.heartbeat_timeout = absl::Seconds(10);
    config_.restart_backoff_base = absl::ZeroDuration();  // tests of restarts restart at once
    config_.AddToken("acme-token", {Role::kTenant, "acme"});
    config_.AddToken("globex-token", {Role::kTenant, "globex"});
    cluster_ = std::make_unique<Cluster>(*store_, clock_, config_);
    ASSERT_TRUE(cluster_->Recover().ok());
  }

  // Runs `fn` in a committed transaction, like one turn of the event loop.
  template <typename F>
  auto InTxn(F fn) {
    EXPECT_TRUE(store_->Begin().ok());
    auto result = fn();
    EXPECT_TRUE(store_->Commit().ok());
    return result;
  }

  protocols::WorkerSync Report(const std::string& node, std::vector<protocols::RankStatus> ranks = {},
                               const std::string& incarnation = "inc-1", uint32_t gpus = 2,
                               const std::string& instance = "") {
    protocols::WorkerReport r;
    r.node = node;
    r.incarnation = incarnation;
    r.instance = instance;
    r.address = "127.0.0.1";
    for (uint32_t g = 0; g < gpus; ++g) r.gpus.push_back({g, "emulated", 0});
    r.free_ports = {41000, 41001};
    r.ranks = std::move(ranks);
    return InTxn([&] { return *cluster_->OnWorkerReport(r, "peer-" + node); });
  }

  // A turn whose work must succeed.
  template <typename F>
  void Do(F fn) {
    absl::Status s = InTxn(fn);
    EXPECT_TRUE(s.ok()) << s;
  }

  uint64_t Submit(const protocols::JobSpec& spec) {
    return InTxn([&] { return *cluster_->Submit("acme", spec); });
  }

  void Schedule() {
    Do([&] { return cluster_->Schedule(); });
  }

  const Job& JobById(uint64_t id) { return *cluster_->FindJob(id); }

  // The rank statuses a worker would report for ranks of `job` on `node`.
  std::vector<protocols::RankStatus> Exits(uint64_t id, const std::string& node,
                                           std::map<uint32_t, int32_t> codes) {
    std::vector<protocols::RankStatus> out;
    const Job& job = JobById(id);
    for (const RankRecord& r : job.ranks) {
      if (r.node != node) continue;
      bool exited = codes.count(r.rank) > 0;
      out.push_back({{job.id, job.attempt, r.rank}, exited, exited ? codes[r.rank] : 0});
    }
    return out;
  }

  std::map<std::string, std::string> EnvOf(const protocols::RankLaunch& launch) {
    std::map<std::string, std::string> env;
    for (const auto& kv : launch.env) env[kv.key] = kv.value;
    return env;
  }

  FakeClock clock_;
  Config config_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Cluster> cluster_;
};

}  // namespace sublet::coordinator
