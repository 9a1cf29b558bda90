// End to end: submissions acknowledged to concurrent clients survive a
// SIGKILL of the coordinator in the middle of the stream (DESIGN.md: every
// job is stored durably before it is acknowledged).
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "client/client.h"
#include "tests/e2e/test_cluster.h"

namespace sublet::e2e {
namespace {

TEST(DurabilityE2eTest, EveryAcknowledgedSubmissionOfConcurrentClientsSurvivesASigkillMidStream) {
  TestCluster cluster({});
  protocols::JobSpec spec;
  spec.name = "durable";
  spec.nodes = 5;  // more nodes than the cluster has: the jobs stay pending
  spec.gpus_per_node = 2;
  spec.command = {"true"};

  constexpr int kClients = 4;
  constexpr int kKillAfter = 60;  // acknowledgements before the SIGKILL
  std::mutex mu;
  std::condition_variable enough;
  std::vector<uint64_t> acked;
  std::atomic<int> failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      client::Client client({.endpoint = cluster.endpoint(),
                             .token = "acme-token",
                             .coordinator_key = cluster.coordinator_key(),
                             .timeout = std::chrono::seconds(3)});
      // Bounded; in practice each client stops at its first failed call,
      // which is the one the SIGKILL interrupts.
      for (int i = 0; i < 100000; ++i) {
        absl::StatusOr<uint64_t> id = client.Submit(spec);
        if (!id.ok()) {
          ++failed;
          break;
        }
        std::lock_guard<std::mutex> lock(mu);
        acked.push_back(*id);
        if (acked.size() >= kKillAfter) enough.notify_all();
      }
    });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(enough.wait_for(lock, std::chrono::seconds(120),
                                [&] { return acked.size() >= kKillAfter; }));
  }
  const int status = cluster.KillCoordinator(SIGKILL);  // while every client is submitting
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(failed.load(), kClients) << "every client was cut off mid-stream";

  cluster.StartCoordinator();
  client::Client admin({.endpoint = cluster.endpoint(),
                        .token = "admin-token",
                        .coordinator_key = cluster.coordinator_key(),
                        .timeout = std::chrono::seconds(10)});
  absl::StatusOr<std::vector<protocols::JobInfo>> jobs;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  do {  // the restarted coordinator answers once it has recovered its store
    jobs = admin.ListJobs(/*all=*/true);
  } while (!jobs.ok() && std::chrono::steady_clock::now() < deadline);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  std::set<uint64_t> stored;
  for (const protocols::JobInfo& j : *jobs) {
    EXPECT_TRUE(stored.insert(j.id).second) << "job " << j.id << " listed twice";
  }
  std::set<uint64_t> unique_acked(acked.begin(), acked.end());
  EXPECT_EQ(unique_acked.size(), acked.size()) << "an id was acknowledged twice";
  int missing = 0;
  for (uint64_t id : acked) missing += stored.count(id) ? 0 : 1;
  EXPECT_EQ(missing, 0) << "of " << acked.size() << " acknowledged submissions";
  // At most the calls the kill cut off were stored without an answer.
  EXPECT_LE(stored.size(), acked.size() + kClients);
}

}  // namespace
}  // namespace sublet::e2e
