// Chaos, bounded: several tenants' jobs, two of them real sublet-train runs
// that checkpoint, run while the coordinator, workers and single ranks are
// SIGKILLed and nodes are reclaimed and released at random (kChaosEvents
// events, seeded). Afterwards the invariants must hold:
//  - every acknowledged job is still known and reaches a final state;
//  - no GPU was ever held by two live ranks at once;
//  - no (job, rank) ran twice at the same time (two attempts overlapping);
//  - every checkpoint a training job resumed from was committed (its COMMIT
//    exists and `sublet ckpt verify` passes).
// Ranks hold a lock per GPU and per (job, rank) for their whole life; a
// failed non-blocking lock is a witnessed violation.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "checkpoint/manifest.h"
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

// Reclaims `node`, waits until it is handed over and releases it again: a
// preemption in the middle of everything else.
void ReclaimAndRelease(const TestCluster& cluster, const std::string& node,
                       const std::string& deadline) {
  CommandResult r = cluster.Sublet({"reclaim", "--nodes", node, "--deadline", deadline,
                                    "--reason", "chaos", "-o", "json"}, "admin-token");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  cluster.Json({"release", "--nodes", node}, "admin-token");
}

// The training jobs' --log-json files: every resume names a committed step.
// Returns how many resumes the job made.
int ExpectResumesFromCommittedCheckpoints(const TestCluster& cluster, const std::string& id,
                                           const std::string& log) {
  const std::string dir = cluster.dir() + "/storage/acme/" + id + "/checkpoints";
  std::ifstream in(log);
  std::string line;
  int resumes = 0;
  while (std::getline(in, line)) {
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || j.value("event", "") != "resume") continue;
    ++resumes;
    // verify needs COMMIT and every checksum.
    const std::string step_dir = dir + "/" + checkpoint::StepDirName(j["step"].get<int64_t>());
    CommandResult verify = cluster.Sublet({"ckpt", "verify", step_dir});
    EXPECT_EQ(verify.exit_code, 0) << "job " << id << " resumed from " << step_dir << ": "
                                   << verify.out << verify.err;
  }
  std::printf("training job %s resumed %d times\n", id.c_str(), resumes);
  return resumes;
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

  std::vector<std::pair<std::string, std::string>> jobs;  // id, token
  // Two training jobs that checkpoint every 10 steps and keep every
  // checkpoint, so each resume can be checked afterwards.
  std::vector<std::pair<std::string, std::string>> training;  // id, log
  const char* train_shapes[] = {"{nodes: 2, gpus_per_node: 2}\nparallelism: {tensor: 2}\n"
                                "elastic: {min_nodes: 1}\n",
                                "{nodes: 1, gpus_per_node: 2}\n"};
  for (int t = 0; t < 2; ++t) {
    const std::string name = "chaos-train-" + std::to_string(t);
    const std::string log = cluster.shared_dir() + "/" + name + ".jsonl";
    std::string spec = cluster.WriteSpec(
        name, "name: " + name + "\nresources: " + train_shapes[t] + "command: [sh, -c, '" +
                  LockingRank(cluster.shared_dir(), Bin("sublet-train") +
                                                 " --model tiny --steps 300 --seed 3 "
                                                 "--global-batch 8 --seq-len 32 "
                                                 "--checkpoint-every 10 --keep 0 --log-json " +
                                                 log) +
                  "']\nmax_restarts: 100\n");
    std::string id = cluster.Submit(spec);
    jobs.push_back({id, "acme-token"});
    training.push_back({id, log});
  }

  // Two tenants, mixed gang sizes, short jobs that restart a lot if needed.
  const int shapes[][2] = {{1, 1}, {1, 2}, {2, 1}, {2, 2}, {3, 1}, {1, 1}, {2, 2}, {1, 2}};
  for (int j = 0; j < 8; ++j) {
    std::string token = j % 2 ? "globex-token" : "acme-token";
    std::string spec = cluster.WriteSpec(
        "chaos-" + std::to_string(j),
        "name: chaos-" + std::to_string(j) + "\nresources: {nodes: " +
            std::to_string(shapes[j][0]) + ", gpus_per_node: " + std::to_string(shapes[j][1]) +
            "}\ncommand: [sh, -c, '" +
            LockingRank(cluster.shared_dir(), "sleep " + std::to_string(1 + j % 3)) +
            "']\nmax_restarts: 100\n");
    jobs.push_back({cluster.Submit(spec, token), token});
  }
  // The first event is certain to hit training: a reclaim of a node the
  // first training job runs on, once it has checkpointed.
  json first = cluster.WaitForJob(training[0].first, [](const json& j) {
    return !j["last_checkpoint_step"].is_null() && j["last_checkpoint_step"] >= 10;
  });
  ReclaimAndRelease(cluster, first["nodes"][0], "5s");
  for (int event = 0; event < kChaosEvents; ++event) {
    switch (rng() % 4) {
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
      case 2:
        KillRandomRank(cluster.dir(), rng);
        break;
      default:
        ReclaimAndRelease(cluster, "node-" + std::to_string(rng() % kWorkers), "2s");
    }
    cluster.WaitForReadyNodes(kWorkers);
  }

  for (const auto& [id, token] : jobs) {
    json job = cluster.WaitForJob(id, [](const json& j) {
      return j["state"] == "succeeded" || j["state"] == "failed" || j["state"] == "cancelled";
    }, token);
    EXPECT_EQ(job["state"], "succeeded") << job.dump(2);
  }
  // The first training job was certainly preempted after a checkpoint, so
  // the check above is never vacuous for it.
  EXPECT_GE(ExpectResumesFromCommittedCheckpoints(cluster, training[0].first, training[0].second),
            1);
  ExpectResumesFromCommittedCheckpoints(cluster, training[1].first, training[1].second);
  std::ifstream violations(cluster.shared_dir() + "/violations");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(violations), {}), "");
}

}  // namespace
}  // namespace sublet::e2e
