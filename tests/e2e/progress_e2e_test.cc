// End to end: ranks report progress through the worker's control endpoint;
// a job that stops making progress for its progress_timeout is restarted and
// finally fails, saying where it stopped.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/e2e/test_cluster.h"

namespace sublet::e2e {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

std::string ProgressSpec(const std::string& args, const std::string& extra) {
  return "name: progress\nresources: {nodes: 1, gpus_per_node: 1}\ncommand: [" +
         Bin("../tests/progress_rank") + ", " + args + "]\n" + extra;
}

TEST(ProgressE2eTest, ReportedProgressIsShownForTheJob) {
  TestCluster cluster({});
  // The rank reports steps 1..5 and then stays (hang), so its last report
  // cannot race its exit: the job must show step 5 while it runs.
  std::string id = cluster.Submit(cluster.WriteSpec("ok", ProgressSpec("'5', hang", "")));
  json job = cluster.WaitForJob(id, [](const json& j) {
    return j["state"] == "running" && !j["progress"].is_null() && j["progress"]["step"] == 5;
  });
  EXPECT_EQ(job["progress"]["step"], 5);
  EXPECT_DOUBLE_EQ(job["progress"]["loss"].get<double>(), 2.0);
  EXPECT_FALSE(job["progress"]["time"].is_null());
  EXPECT_EQ(cluster.Json({"cancel", id})["state"], "cancelled");
}

TEST(ProgressE2eTest, HungJobIsRestartedThenFailsSayingWhereItStopped) {
  TestCluster cluster({});
  std::string id = cluster.Submit(cluster.WriteSpec(
      "hang", ProgressSpec("'3', hang", "progress_timeout: 2s\nmax_restarts: 1\n")));
  json running = cluster.WaitForJob(id, [](const json& j) {
    return !j["progress"].is_null() && j["progress"]["step"] == 3;
  });
  EXPECT_EQ(running["state"], "running");
  json job = cluster.WaitForState(id, "failed");
  EXPECT_EQ(job["restarts"], 1);
  EXPECT_THAT(job["reason"].get<std::string>(), HasSubstr("no progress for 2s (last step 3)"));
  int hung = 0;
  for (const json& e : job["events"]) hung += e["kind"] == "hung";
  EXPECT_EQ(hung, 2);
}

}  // namespace
}  // namespace sublet::e2e
