// End to end with real daemons and real sublet-train ranks: tenant acme
// borrows the whole cluster with checkpointing jobs; globex submits within
// its quota; one of acme's borrowed jobs acknowledges a checkpoint and is
// requeued; globex's job runs within the grace; acme's job resumes from its
// checkpoint when capacity returns. Nothing counts as a failure.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/time.h"
#include "tests/e2e/test_cluster.h"

namespace sublet::e2e {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

std::string TrainSpec(const std::string& name, int steps) {
  return "name: " + name +
         "\nresources: {nodes: 1, gpus_per_node: 2}\n"
         "parallelism: {tensor: 2}\n"
         "checkpoint: {every_steps: 10, keep: 2}\n"
         "command: [" + Bin("sublet-train") + ", --model, tiny, --steps, '" +
         std::to_string(steps) + "', --seed, '7', --global-batch, '4', --seq-len, '32']\n";
}

// The time of the job's first event of `kind` (its "time" is RFC 3339 UTC).
absl::Time EventTime(const json& job, const std::string& kind) {
  for (const json& e : job["events"]) {
    if (e["kind"] != kind) continue;
    absl::Time t;
    std::string err;
    if (absl::ParseTime(absl::RFC3339_full, e["time"].get<std::string>(), &t, &err)) return t;
  }
  return absl::InfinitePast();
}

TEST(FairnessE2eTest, ABorrowerCheckpointsAndRequeuesSoATenantGetsItsQuotaThenResumes) {
  TestCluster::Options options;
  options.acme_fields = ", quota: {gpus: 2}";
  options.globex_fields = ", quota: {gpus: 2}";
  options.extra_config = "fairness_preemption: {grace: 60s, min_runtime: 0s}\n";
  TestCluster cluster(options);

  // acme takes both nodes: 2 GPUs within its quota, 2 borrowed.
  std::vector<std::string> acme = {
      cluster.Submit(cluster.WriteSpec("a1", TrainSpec("a1", 400))),
      cluster.Submit(cluster.WriteSpec("a2", TrainSpec("a2", 400)))};
  for (const std::string& id : acme) {
    cluster.WaitForJob(id, [](const json& j) {
      return !j["progress"].is_null() && j["progress"]["step"] >= 12;
    });
  }
  json tenants = cluster.Json({"tenants"});
  EXPECT_EQ(tenants["tenants"][0]["borrowed_gpus"], 2) << tenants.dump();

  // globex asks for its quota.
  const std::string theirs =
      cluster.Submit(cluster.WriteSpec("g", TrainSpec("g", 20)), "globex-token");
  json done = cluster.WaitForJob(
      theirs, [](const json& j) { return j["state"] == "succeeded"; }, "globex-token");
  EXPECT_EQ(done["restarts"], 0);

  // Exactly one of acme's jobs was preempted for it, and acknowledged.
  std::string victim;
  for (const std::string& id : acme) {
    json j = cluster.Json({"show", id});
    if (j["preemptions"] == 1) {
      EXPECT_TRUE(victim.empty()) << "both acme jobs were preempted";
      victim = id;
    } else {
      EXPECT_EQ(j["preemptions"], 0) << j.dump();
    }
  }
  ASSERT_FALSE(victim.empty());
  json v = cluster.WaitForState(victim, "succeeded");
  EXPECT_EQ(v["preemptions"], 1);
  EXPECT_EQ(v["restarts"], 0);
  EXPECT_TRUE(HasEvent(v, "acknowledged")) << v.dump();
  EXPECT_FALSE(HasEvent(v, "preempt_killed")) << v.dump();
  EXPECT_THAT(v["preempt_why"].get<std::string>(),
              HasSubstr("fairness: for job " + theirs + " of tenant globex"));
  // It resumed from the checkpoint it acknowledged, not from the start.
  EXPECT_GE(v["resume_step"].get<int>(), 10);
  // globex started within the grace of the notice.
  json g = cluster.Json({"show", theirs}, "globex-token");
  const absl::Time noticed = EventTime(v, "preempting");
  const absl::Time started = EventTime(g, "started");
  ASSERT_NE(noticed, absl::InfinitePast()) << v.dump();
  EXPECT_GE(started, noticed);
  EXPECT_LE(started - noticed, absl::Seconds(60));
  EXPECT_TRUE(HasEvent(g, "fairness_preemption")) << g.dump();

  // sublet show names the reason and the job it was preempted for.
  CommandResult show = cluster.Sublet({"show", victim});
  EXPECT_THAT(show.out, HasSubstr("Preempted:"));
  EXPECT_THAT(show.out, HasSubstr("of tenant globex"));
  // The tenants' accounts: acme borrowed, globex ran within its quota.
  json all = cluster.Json({"tenants"}, "admin-token");
  for (const json& t : all["tenants"]) {
    if (t["name"] == "acme") {
      EXPECT_GT(t["gpu_seconds_borrowed"].get<double>(), 0) << t.dump();
    }
    if (t["name"] == "globex") {
      EXPECT_EQ(t["gpu_seconds_borrowed"].get<double>(), 0) << t.dump();
      EXPECT_GT(t["gpu_seconds_within_quota"].get<double>(), 0) << t.dump();
    }
  }
}

}  // namespace
}  // namespace sublet::e2e
