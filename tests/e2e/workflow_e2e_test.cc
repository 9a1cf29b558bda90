// End to end: job arrays and dependencies through the `sublet` CLI against a
// real coordinator and workers. An array's tasks see their index, at most N
// run at once while GPUs are free, and jobs that depend on the array start
// (or are cancelled) only once every task has ended.
#include <chrono>
#include <fstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fmt/format.h"
#include "tests/e2e/test_cluster.h"

namespace sublet::e2e {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

// Polls `sublet jobs --array ID` until `done` holds for the listing.
json WaitForArray(const TestCluster& cluster, const std::string& id,
                  const std::function<bool(const json&)>& done) {
  json jobs;
  for (int i = 0; i < 1800; ++i) {  // 90 s at most
    jobs = cluster.Json({"jobs", "--array", id});
    if (done(jobs["jobs"])) return jobs["jobs"];
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "array " << id << " never got there; last: " << jobs.dump(2);
  return jobs["jobs"];
}

TEST(WorkflowE2eTest, AnArrayRunsAtMostItsLimitAndItsDependentsWaitForEveryTask) {
  TestCluster cluster{TestCluster::Options{}};  // 2 nodes x 2 GPUs: room for 4 tasks
  const std::string release = cluster.shared_dir() + "/release";
  // Each task prints its index and holds its GPU until the test releases it
  // (bounded: 300 s).
  const std::string spec = cluster.WriteSpec(
      "sweep",
      "name: sweep\nresources: {nodes: 1, gpus_per_node: 1}\ncommand: [sh, -c, 'echo "
      "index=$SUBLET_ARRAY_INDEX of $SUBLET_ARRAY_TASK_COUNT in $SUBLET_ARRAY_JOB_ID; i=0; "
      "while [ ! -e " + release + " ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i+1)); done']\n");
  CommandResult submitted = cluster.Sublet({"submit", "--array", "0-5%2", spec});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string id = submitted.out.substr(0, submitted.out.find('\n'));
  const uint64_t first = std::stoull(id);
  EXPECT_EQ(submitted.err, fmt::format("array job {}: 6 tasks, jobs {}-{} (array: 0-5%2)\n", id,
                                       id, first + 5));

  const std::string after_spec = cluster.WriteSpec(
      "after", "name: after\nresources: {nodes: 1, gpus_per_node: 1}\ncommand: [true]\n"
               "depends_on: [{job: " + id + ", when: succeeded}]\n");
  const std::string after = cluster.Submit(after_spec);
  CommandResult on_failure =
      cluster.Sublet({"submit", "--depends-on", id + ":failed", cluster.WriteSpec("cleanup",
          "name: cleanup\nresources: {nodes: 1, gpus_per_node: 1}\ncommand: [true]\n")});
  ASSERT_EQ(on_failure.exit_code, 0) << on_failure.err;
  const std::string cleanup = on_failure.out.substr(0, on_failure.out.find('\n'));

  // Four GPUs are free, yet two tasks run; the other four say why they wait.
  WaitForArray(cluster, id, [](const json& tasks) {
    int running = 0, throttled = 0;
    for (const json& t : tasks) {
      running += t["state"] == "running";
      throttled += t["state"] == "pending" &&
                   t["reason"].get<std::string>().find("at most 2 at once") != std::string::npos;
    }
    return tasks.size() == 6 && running == 2 && throttled == 4;
  });
  json waiting = cluster.Json({"show", after});
  EXPECT_EQ(waiting["state"], "pending");
  EXPECT_THAT(waiting["reason"].get<std::string>(),
              HasSubstr("depends_on: waiting for array job " + id));
  CommandResult shown = cluster.Sublet({"show", std::to_string(first + 3)});
  EXPECT_THAT(shown.out, HasSubstr("index 3 of array job " + id + " (6 tasks"));

  std::ofstream(release) << "go\n";
  json done = cluster.WaitForState(after, "succeeded");
  json tasks = WaitForArray(cluster, id, [](const json& ts) {
    for (const json& t : ts) {
      if (t["state"] != "succeeded") return false;
    }
    return ts.size() == 6;
  });
  for (const json& t : tasks) EXPECT_EQ(t["array"]["id"], id);
  CommandResult logs = cluster.Sublet({"logs", std::to_string(first + 4)});
  EXPECT_EQ(logs.out, fmt::format("index=4 of 6 in {}\n", id));
  json cancelled = cluster.WaitForState(cleanup, "cancelled");
  EXPECT_THAT(cancelled["reason"].get<std::string>(),
              HasSubstr("dependency can never hold: every task of array job " + id + " succeeded"));
}

TEST(WorkflowE2eTest, ADependencyOnAnotherTenantsJobIsRefusedAsNotFound) {
  TestCluster cluster{TestCluster::Options{}};
  const std::string theirs = cluster.Submit(
      cluster.WriteSpec("theirs", "name: theirs\nresources: {nodes: 1, gpus_per_node: 1}\n"
                                  "command: [true]\n"),
      "globex-token");
  ASSERT_FALSE(theirs.empty());
  CommandResult refused = cluster.Sublet(
      {"submit", "--depends-on", theirs,
       cluster.WriteSpec("mine", "name: mine\nresources: {nodes: 1, gpus_per_node: 1}\n"
                                 "command: [true]\n")});
  EXPECT_EQ(refused.exit_code, 3) << refused.err;
  EXPECT_THAT(refused.err, HasSubstr("depends_on[0].job: job " + theirs + " not found"));
}

}  // namespace
}  // namespace sublet::e2e
