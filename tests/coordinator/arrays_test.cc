// Job arrays (spec.array) and dependencies (spec.depends_on) in the Cluster:
// one job per index with its index in the environment, at most N running at
// once, dependencies that hold, wait (saying for what) or never hold (the job
// is cancelled), and what a tenant may not depend on.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "coordinator/dependencies.h"
#include "fmt/format.h"
#include "tests/coordinator/cluster_fixture.h"

namespace sublet::coordinator {
namespace {

using protocols::Dependency;
using protocols::DependencyWhen;
using ::testing::HasSubstr;
using ::testing::SizeIs;

protocols::JobSpec ArraySpec(const std::string& array) {
  protocols::JobSpec spec = Spec(1, 1);
  spec.array = array;
  return spec;
}

protocols::JobSpec After(std::vector<Dependency> deps) {
  protocols::JobSpec spec = Spec(1, 1);
  spec.depends_on = std::move(deps);
  return spec;
}

class ArrayTest : public ClusterTest {
 protected:
  // A node with `gpus` GPUs.
  void Node(const std::string& name, uint32_t gpus) { Report(name, {}, "inc-1", gpus); }

  size_t Running(uint64_t first, uint64_t count) {
    size_t n = 0;
    for (uint64_t id = first; id < first + count; ++id) {
      if (JobById(id).state == JobState::kRunning) ++n;
    }
    return n;
  }

  void Succeed(uint64_t id) { Report("node-a", Exits(id, "node-a", {{0, 0}}), "inc-1", 8); }
  void Fail(uint64_t id) { Report("node-a", Exits(id, "node-a", {{0, 1}}), "inc-1", 8); }
};

TEST_F(ArrayTest, AnArrayIsOneJobPerIndexWithConsecutiveIdsAndItsIndexInTheEnvironment) {
  Node("node-a", 8);
  const uint64_t first = Submit(ArraySpec("0,5,10-12"));
  const uint32_t want[] = {0, 5, 10, 11, 12};
  for (uint64_t t = 0; t < 5; ++t) {
    const Job& task = JobById(first + t);
    EXPECT_EQ(task.array_id, first);
    EXPECT_EQ(task.array_index, want[t]);
    EXPECT_EQ(task.array_size, 5u);
  }
  EXPECT_EQ(cluster_->FindJob(first + 5), nullptr);
  Schedule();
  auto sync = cluster_->SyncFor(*cluster_->FindNode("node-a"));
  ASSERT_THAT(sync.desired, SizeIs(5));
  for (const auto& launch : sync.desired) {
    auto env = EnvOf(launch);
    const uint64_t id = launch.key.job_id;
    EXPECT_EQ(env["SUBLET_ARRAY_JOB_ID"], std::to_string(first));
    EXPECT_EQ(env["SUBLET_ARRAY_INDEX"], std::to_string(want[id - first]));
    EXPECT_EQ(env["SUBLET_ARRAY_TASK_COUNT"], "5");
  }
}

TEST_F(ArrayTest, AJobThatIsNoArrayTaskGetsNoArrayVariables) {
  Node("node-a", 8);
  Submit(Spec(1, 1));
  Schedule();
  auto env = EnvOf(cluster_->SyncFor(*cluster_->FindNode("node-a")).desired.at(0));
  EXPECT_EQ(env.count("SUBLET_ARRAY_INDEX"), 0u);
  EXPECT_EQ(env.count("SUBLET_ARRAY_JOB_ID"), 0u);
}

// %2: two tasks at once, in index order, also across a coordinator restart
// (the limit comes back from the stored spec), and the rest say why.
TEST_F(ArrayTest, AnArrayRunsAtMostItsLimitAtOnceAndTheOthersSayWhy) {
  Node("node-a", 8);
  const uint64_t first = Submit(ArraySpec("0-5%2"));
  Schedule();
  EXPECT_EQ(Running(first, 6), 2u);
  EXPECT_EQ(JobById(first).state, JobState::kRunning);
  EXPECT_EQ(JobById(first + 1).state, JobState::kRunning);
  EXPECT_THAT(JobById(first + 2).reason,
              HasSubstr(fmt::format("array job {}: 2 of its tasks running, at most 2 at once",
                                    first)));
  Succeed(first);
  ASSERT_TRUE(cluster_->Recover().ok());
  Node("node-a", 8);
  Schedule();
  EXPECT_EQ(Running(first, 6), 2u);
  EXPECT_EQ(JobById(first + 2).state, JobState::kRunning) << "the next index starts";
  Fail(first + 1);  // a failed task frees its slot too
  Schedule();
  EXPECT_EQ(Running(first, 6), 2u);
  EXPECT_EQ(JobById(first + 3).state, JobState::kRunning);
}

// A task being stopped still holds its GPUs: it counts until it has exited.
TEST_F(ArrayTest, ATaskThatIsStillStoppingCountsAgainstTheLimit) {
  Node("node-a", 8);
  const uint64_t first = Submit(ArraySpec("0-2%1"));
  Schedule();
  Do([&] { return cluster_->Cancel(first, "acme"); });
  Schedule();
  EXPECT_EQ(JobById(first + 1).state, JobState::kPending);
  Report("node-a", Exits(first, "node-a", {{0, 143}}), "inc-1", 8);
  Schedule();
  EXPECT_EQ(JobById(first + 1).state, JobState::kRunning);
}

// A task waiting out its restart backoff holds no GPU: the next index runs.
TEST_F(ArrayTest, ATaskInItsRestartBackoffLeavesItsSlotToTheNextIndex) {
  config_.restart_backoff_base = absl::Minutes(1);
  Node("node-a", 8);
  protocols::JobSpec spec = ArraySpec("0-1%1");
  spec.max_restarts = 1;
  const uint64_t first = Submit(spec);
  Schedule();
  EXPECT_EQ(JobById(first + 1).state, JobState::kPending);
  Fail(first);
  Schedule();
  EXPECT_THAT(JobById(first).reason, HasSubstr("restart backoff"));
  EXPECT_EQ(JobById(first + 1).state, JobState::kRunning);
}

TEST_F(ArrayTest, EveryTaskCountsAgainstTheJobLimitAndARefusedArrayStoresNothing) {
  config_.max_jobs_per_tenant = 5;
  Submit(Spec(1, 1));
  auto refused = InTxn([&] { return cluster_->Submit("acme", ArraySpec("0-4")); });
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("this array adds 5"));
  EXPECT_THAT(cluster_->jobs(), SizeIs(1));
  EXPECT_TRUE(InTxn([&] { return cluster_->Submit("acme", ArraySpec("0-3")); }).ok());
}

// What one submission may store is bounded: tasks times the spec's size.
TEST_F(ArrayTest, AnArrayOfAHugeSpecIsRefusedNamingTheArray) {
  protocols::JobSpec spec = ArraySpec("0-999");
  for (int i = 0; i < 200; ++i) spec.command.push_back(std::string(200, 'x'));
  auto refused = InTxn([&] { return cluster_->Submit("acme", spec); });
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("array: 1000 tasks"));
  EXPECT_THAT(cluster_->jobs(), SizeIs(0));
}

TEST_F(ArrayTest, AJobWaitsForItsDependencyToSucceedAndSaysSo) {
  Node("node-a", 8);
  const uint64_t a = Submit(Spec(1, 1));
  const uint64_t b = Submit(After({{a, DependencyWhen::kSucceeded}}));
  Schedule();
  EXPECT_EQ(JobById(a).state, JobState::kRunning);
  EXPECT_EQ(JobById(b).state, JobState::kPending);
  EXPECT_EQ(JobById(b).reason, fmt::format("depends_on: waiting for job {} to succeed", a));
  ASSERT_TRUE(cluster_->Recover().ok());  // the wait survives a restart
  Node("node-a", 8);
  Schedule();
  EXPECT_EQ(JobById(b).state, JobState::kPending);
  Succeed(a);
  Schedule();
  EXPECT_EQ(JobById(b).state, JobState::kRunning);
}

// afterok / afternotok / afterany when the job they name fails.
TEST_F(ArrayTest, AFailureCancelsWhatWaitsForSuccessAndStartsWhatWaitsForFailureOrAnEnd) {
  Node("node-a", 8);
  const uint64_t a = Submit(Spec(1, 1));
  const uint64_t ok = Submit(After({{a, DependencyWhen::kSucceeded}}));
  const uint64_t notok = Submit(After({{a, DependencyWhen::kFailed}}));
  const uint64_t any = Submit(After({{a, DependencyWhen::kAny}}));
  Schedule();
  EXPECT_EQ(JobById(notok).reason, fmt::format("depends_on: waiting for job {} to fail", a));
  EXPECT_EQ(JobById(any).reason, fmt::format("depends_on: waiting for job {} to end", a));
  Fail(a);
  Schedule();
  EXPECT_EQ(JobById(ok).state, JobState::kCancelled);
  EXPECT_EQ(JobById(ok).reason, fmt::format("dependency can never hold: job {} failed "
                                            "(depends_on when: succeeded)", a));
  EXPECT_EQ(JobById(notok).state, JobState::kRunning);
  EXPECT_EQ(JobById(any).state, JobState::kRunning);
}

TEST_F(ArrayTest, ASuccessCancelsWhatWaitsForFailure) {
  Node("node-a", 8);
  const uint64_t a = Submit(Spec(1, 1));
  const uint64_t notok = Submit(After({{a, DependencyWhen::kFailed}}));
  Schedule();
  Succeed(a);
  Schedule();
  EXPECT_EQ(JobById(notok).state, JobState::kCancelled);
  EXPECT_THAT(JobById(notok).reason, HasSubstr(fmt::format("job {} succeeded", a)));
}

// A cancel that makes a chain impossible ends the whole chain in one pass.
TEST_F(ArrayTest, ACancelledDependencyCancelsAChainOfDependentsInOnePass) {
  const uint64_t a = Submit(Spec(1, 1));
  const uint64_t b = Submit(After({{a, DependencyWhen::kSucceeded}}));
  const uint64_t c = Submit(After({{b, DependencyWhen::kSucceeded}}));
  const uint64_t d = Submit(After({{b, DependencyWhen::kAny}}));
  Do([&] { return cluster_->Cancel(a, "acme"); });
  Schedule();
  EXPECT_EQ(JobById(b).state, JobState::kCancelled);
  EXPECT_EQ(JobById(c).state, JobState::kCancelled);
  EXPECT_EQ(JobById(d).state, JobState::kPending) << "b ended: d may start (no node yet)";
  EXPECT_THAT(JobById(d).reason, ::testing::Not(HasSubstr("depends_on")));
}

TEST_F(ArrayTest, ADependencyOnAnArraysIdWaitsForEveryTask) {
  Node("node-a", 8);
  const uint64_t first = Submit(ArraySpec("0-2"));
  const uint64_t after = Submit(After({{first, DependencyWhen::kSucceeded}}));
  Schedule();
  Succeed(first);
  Succeed(first + 1);
  Schedule();
  EXPECT_EQ(JobById(after).reason,
            fmt::format("depends_on: waiting for array job {} (2 of 3 tasks ended) to succeed",
                        first));
  Succeed(first + 2);
  Schedule();
  EXPECT_EQ(JobById(after).state, JobState::kRunning);
}

TEST_F(ArrayTest, AFailedTaskCancelsWhatWaitsForTheWholeArrayToSucceed) {
  Node("node-a", 8);
  const uint64_t first = Submit(ArraySpec("0-2"));
  const uint64_t ok = Submit(After({{first, DependencyWhen::kSucceeded}}));
  const uint64_t any = Submit(After({{first, DependencyWhen::kAny}}));
  Schedule();
  Fail(first + 1);
  Schedule();
  EXPECT_EQ(JobById(ok).state, JobState::kCancelled);
  EXPECT_THAT(JobById(ok).reason, HasSubstr(fmt::format("array job {}: a task did not succeed",
                                                        first)));
  EXPECT_EQ(JobById(any).state, JobState::kPending);
}

// Another tenant's job is "not found", like a job that does not exist: ids
// reveal nothing, and no tenant can learn how a rival's job ended.
TEST_F(ArrayTest, ADependencyOnAnotherTenantsJobIsNotFoundLikeAnUnknownJob) {
  const uint64_t theirs = InTxn([&] { return *cluster_->Submit("globex", Spec(1, 1)); });
  for (uint64_t id : {theirs, uint64_t{999}}) {
    auto refused = InTxn([&] {
      return cluster_->Submit("acme", After({{id, DependencyWhen::kSucceeded}}));
    });
    ASSERT_EQ(refused.status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(refused.status().message(),
              fmt::format("depends_on[0].job: job {} not found", id));
  }
}

TEST_F(ArrayTest, ADependencyThatCanNoLongerHoldIsRefusedAtSubmit) {
  Node("node-a", 8);
  const uint64_t a = Submit(Spec(1, 1));
  Schedule();
  Succeed(a);
  auto refused =
      InTxn([&] { return cluster_->Submit("acme", After({{a, DependencyWhen::kFailed}})); });
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.status().message(),
            fmt::format("depends_on[0]: job {} succeeded, so when: failed can never hold", a));
  // One that already holds is fine, and starts at once.
  const uint64_t b = Submit(After({{a, DependencyWhen::kSucceeded}}));
  Schedule();
  EXPECT_EQ(JobById(b).state, JobState::kRunning);
}

TEST(JudgeDependencyTest, EachWhenHoldsWaitsOrNeverHoldsAsSlurmsAfterokAfternotokAfterany) {
  struct Case {
    DependencyWhen when;
    uint32_t tasks, ended, succeeded;
    DependencyState want;
  };
  const Case cases[] = {
      {DependencyWhen::kSucceeded, 1, 0, 0, DependencyState::kWaiting},
      {DependencyWhen::kSucceeded, 1, 1, 1, DependencyState::kHolds},
      {DependencyWhen::kSucceeded, 1, 1, 0, DependencyState::kNever},
      {DependencyWhen::kSucceeded, 3, 1, 0, DependencyState::kNever},
      {DependencyWhen::kSucceeded, 3, 2, 2, DependencyState::kWaiting},
      {DependencyWhen::kFailed, 1, 0, 0, DependencyState::kWaiting},
      {DependencyWhen::kFailed, 1, 1, 0, DependencyState::kHolds},
      {DependencyWhen::kFailed, 1, 1, 1, DependencyState::kNever},
      {DependencyWhen::kFailed, 3, 2, 1, DependencyState::kWaiting},
      {DependencyWhen::kFailed, 3, 3, 2, DependencyState::kHolds},
      {DependencyWhen::kFailed, 3, 3, 3, DependencyState::kNever},
      {DependencyWhen::kAny, 1, 0, 0, DependencyState::kWaiting},
      {DependencyWhen::kAny, 3, 2, 0, DependencyState::kWaiting},
      {DependencyWhen::kAny, 3, 3, 3, DependencyState::kHolds},
      {DependencyWhen::kAny, 1, 1, 0, DependencyState::kHolds},
  };
  for (const Case& c : cases) {
    DependencyTarget t{7, c.tasks > 1, c.tasks, c.ended, c.succeeded, "failed"};
    EXPECT_EQ(JudgeDependency({7, c.when}, t).state, c.want)
        << protocols::DependencyWhenName(c.when) << " " << c.tasks << "/" << c.ended << "/"
        << c.succeeded;
  }
}

}  // namespace
}  // namespace sublet::coordinator
