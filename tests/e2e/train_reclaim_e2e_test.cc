// End to end with real sublet-train ranks: a DP2 x TP2 job loses one of its
// two nodes to a reclaim, checkpoints, is requeued, resumes on the node left
// (DP1 x TP2, the same global batch) and finishes with the loss of a run that
// was never interrupted.
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "checkpoint/manifest.h"
#include "tests/e2e/test_cluster.h"

namespace sublet::e2e {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

constexpr int kSteps = 90;

std::string TrainSpec(const std::string& name, const std::string& log) {
  return "name: " + name +
         "\nresources: {nodes: 2, gpus_per_node: 2}\n"
         "parallelism: {tensor: 2}\n"
         "checkpoint: {every_steps: 10, keep: 3}\n"
         "elastic: {min_nodes: 1}\n"
         "command: [" + Bin("sublet-train") + ", --model, tiny, --steps, '" +
         std::to_string(kSteps) + "', --seed, '7', --global-batch, '8', --seq-len, '32', "
         "--log-json, " + log + "]\n";
}

// step -> loss, from the trainer's --log-json (rank 0, appended across attempts).
std::map<int, double> Losses(const std::string& path) {
  std::map<int, double> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("loss")) out[j["step"].get<int>()] = j["loss"];
  }
  return out;
}

TEST(TrainReclaimE2eTest, ReclaimedDp2Tp2JobResumesOnOneNodeAndEndsWithTheUninterruptedLoss) {
  TestCluster cluster({});
  const std::string log = cluster.shared_dir() + "/reclaimed.jsonl";
  std::string id = cluster.Submit(cluster.WriteSpec("gpt", TrainSpec("gpt", log)));
  cluster.WaitForJob(id, [](const json& j) {
    return !j["progress"].is_null() && j["progress"]["step"] >= 25;
  });

  json r = cluster.Json({"reclaim", "--nodes", "node-1", "--deadline", "60s", "--reason",
                         "internal eval"}, "admin-token");
  ASSERT_EQ(r["jobs"].size(), 1u);
  EXPECT_EQ(r["jobs"][0]["state"], "acknowledged");
  const int acked = r["jobs"][0]["checkpoint_step"].get<int>();
  EXPECT_GE(acked, 25);
  EXPECT_EQ(r["nodes"][0]["state"], "reclaimed");

  json job = cluster.WaitForState(id, "succeeded");
  EXPECT_EQ(job["preemptions"], 1);
  EXPECT_EQ(job["restarts"], 0);
  EXPECT_EQ(job["resume_step"], acked);
  EXPECT_EQ(job["nodes"], json::array({"node-0"}));
  // Nothing before the checkpoint was lost: the resumed attempt starts at it,
  // resharding what DP2 x TP2 saved.
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("{\"event\":\"resume\",\"step\":" + std::to_string(acked) +
                              ",\"from_dp\":2,\"from_tp\":2}"));

  // The checkpoint the job acknowledged is committed and verifies (retention
  // keeps it: the resumed attempt started from it).
  const std::string acked_dir = cluster.dir() + "/storage/acme/" + id + "/checkpoints/" +
                                checkpoint::StepDirName(acked);
  CommandResult verify = cluster.Sublet({"ckpt", "verify", acked_dir});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

  // The same job never interrupted (released node, same seed and batch).
  cluster.Json({"release", "--nodes", "node-1"}, "admin-token");
  const std::string ref_log = cluster.shared_dir() + "/reference.jsonl";
  std::string ref = cluster.Submit(cluster.WriteSpec("ref", TrainSpec("ref", ref_log)));
  json ref_job = cluster.WaitForState(ref, "succeeded");
  EXPECT_EQ(ref_job["preemptions"], 0);

  std::map<int, double> reclaimed = Losses(log);
  std::map<int, double> reference = Losses(ref_log);
  ASSERT_TRUE(reclaimed.count(kSteps) && reference.count(kSteps));
  // Up to the checkpoint both ran DP2 x TP2: bitwise the same, every step.
  for (int step = 1; step <= acked; ++step) {
    ASSERT_TRUE(reclaimed.count(step) && reference.count(step)) << "step " << step << " missing";
    EXPECT_EQ(reclaimed[step], reference[step]) << "step " << step;
  }
  // After it the resumed run is DP1 x TP2: the same global batch, gradients
  // summed in another order, so equal within float rounding.
  for (int step = acked + 1; step <= kSteps; ++step) {
    ASSERT_TRUE(reclaimed.count(step)) << "step " << step << " missing after the resume";
    EXPECT_NEAR(reclaimed[step], reference[step], 1e-4 * std::abs(reference[step]))
        << "step " << step;
  }
}

}  // namespace
}  // namespace sublet::e2e
