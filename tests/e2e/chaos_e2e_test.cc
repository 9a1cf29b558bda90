// Chaos, bounded: several tenants' jobs run while the coordinator, workers
// and single ranks are SIGKILLed at random (kChaosEvents events, seeded).
// Afterwards the invariants must hold:
//  - every acknowledged job is still known and reaches a final state;
//  - no GPU was ever held by two live ranks at once;
//  - no (job, rank) ran twice at the same time (two attempts overlapping).
// Ranks hold a lock per GPU and per (job, rank) for their whole life; a
// failed non-blocking lock is a witnessed violation.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/e2e/test_cluster.h"

namespace sublet::e2e {
namespace {

using nlohmann::json;

constexpr int kWorkers = 3;
constexpr int kChaosEvents = 12;

// SIGKILLs one live rank chosen at random from the workers' pid files.
bool KillRandomRank(const std::string& dir, std::mt19937& rng) {
  std::vector<std::filesystem::path> pid_files;
  for (int i = 0; i < kWorkers; ++i) {
    std::filesystem::path ranks = dir + "/node-" + std::to_string(i) + "/ranks";
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(ranks, ec)) {
      pid_files.push_back(e.path());
    }
  }
  if (pid_files.empty()) return false;
  std::ifstream in(pid_files[rng() % pid_files.size()]);
  int pid = 0;
  return (in >> pid) && pid > 1 && kill(pid, SIGKILL) == 0;
}

TEST(ChaosE2eTest, RandomKillsOfCoordinatorWorkersAndRanksKeepTheInvariants) {
  TestCluster::Options options;
  options.workers = kWorkers;
  options.gpus = 2;
  options.heartbeat_timeout = "2s";
  options.stop_grace = "1s";
  TestCluster cluster(options);
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  SCOPED_TRACE("chaos seed " + std::to_string(seed));

  // Two tenants, mixed gang sizes, short jobs that restart a lot if needed.
  std::vector<std::pair<std::string, std::string>> jobs;  // id, token
  const int shapes[][2] = {{1, 1}, {1, 2}, {2, 1}, {2, 2}, {3, 1}, {1, 1}, {2, 2}, {1, 2}};
  for (int j = 0; j < 8; ++j) {
    std::string token = j % 2 ? "globex-token" : "acme-token";
    std::string spec = cluster.WriteSpec(
        "chaos-" + std::to_string(j),
        "name: chaos-" + std::to_string(j) + "\nresources: {nodes: " +
            std::to_string(shapes[j][0]) + ", gpus_per_node: " + std::to_string(shapes[j][1]) +
            "}\ncommand: [sh, -c, '" +
            LockingRank(cluster.dir(), "sleep " + std::to_string(1 + j % 3)) +
            "']\nmax_restarts: 100\n");
    jobs.push_back({cluster.Submit(spec, token), token});
  }

  for (int event = 0; event < kChaosEvents; ++event) {
    switch (rng() % 3) {
      case 0:
        cluster.KillCoordinator(SIGKILL);
        cluster.StartCoordinator();
        break;
      case 1: {
        int w = static_cast<int>(rng() % kWorkers);
        cluster.KillWorker(w, SIGKILL);
        cluster.StartWorker(w);
        break;
      }
      default:
        KillRandomRank(cluster.dir(), rng);
    }
    cluster.WaitForReadyNodes(kWorkers);
  }

  for (const auto& [id, token] : jobs) {
    json job = cluster.WaitForJob(id, [](const json& j) {
      return j["state"] == "succeeded" || j["state"] == "failed" || j["state"] == "cancelled";
    }, token);
    EXPECT_EQ(job["state"], "succeeded") << job.dump(2);
  }
  std::ifstream violations(cluster.dir() + "/violations");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(violations), {}), "");
}

}  // namespace
}  // namespace sublet::e2e
