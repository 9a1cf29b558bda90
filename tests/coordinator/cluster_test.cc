#include "coordinator/cluster.h"
#include "tests/coordinator/cluster_fixture.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

namespace sublet::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

TEST_F(ClusterTest, StartsGangWithConsistentRankEnvironment) {
  Report("node-a");
  Report("node-b");
  uint64_t id = Submit(Spec(2, 2));
  Schedule();
  EXPECT_EQ(JobById(id).state, JobState::kRunning);
  auto a = cluster_->SyncFor(*cluster_->FindNode("node-a"));
  auto b = cluster_->SyncFor(*cluster_->FindNode("node-b"));
  ASSERT_THAT(a.desired, SizeIs(2));
  ASSERT_THAT(b.desired, SizeIs(2));
  auto env = EnvOf(b.desired[1]);
  EXPECT_EQ(env["SUBLET_RANK"], "3");
  EXPECT_EQ(env["RANK"], "3");
  EXPECT_EQ(env["SUBLET_WORLD_SIZE"], "4");
  EXPECT_EQ(env["SUBLET_LOCAL_RANK"], "1");
  EXPECT_EQ(env["SUBLET_LOCAL_WORLD_SIZE"], "2");
  EXPECT_EQ(env["SUBLET_NODE_RANK"], "1");
  EXPECT_EQ(env["SUBLET_NODE_NAME"], "node-b");
  EXPECT_EQ(env["MASTER_ADDR"], "127.0.0.1");
  EXPECT_EQ(env["MASTER_PORT"], EnvOf(a.desired[0])["MASTER_PORT"]);
  EXPECT_EQ(env["SUBLET_RENDEZVOUS"], EnvOf(a.desired[0])["SUBLET_RENDEZVOUS"]);
  EXPECT_THAT(env["SUBLET_CHECKPOINT_DIR"], HasSubstr("/acme/" + std::to_string(id)));
}

// A tenant's env must not override what the service sets, e.g. point
// SUBLET_CHECKPOINT_DIR into another tenant's storage: every variable the
// coordinator gives a rank (and the worker's own) is refused in a spec.
TEST_F(ClusterTest, ASpecCannotSetAnyVariableTheServiceSets) {
  Report("node-a");
  protocols::JobSpec task = Spec(1, 2);
  task.array = "0";  // an array task: its SUBLET_ARRAY_* variables are the service's too
  task.launcher = "torchrun";  // and SUBLET_LAUNCHER
  Submit(task);
  Schedule();
  auto sync = cluster_->SyncFor(*cluster_->FindNode("node-a"));
  ASSERT_THAT(sync.desired, SizeIs(1));  // one torchrun for the node's 2 GPUs
  EXPECT_THAT(sync.desired[0].gpus, SizeIs(2));
  ASSERT_EQ(EnvOf(sync.desired[0]).count("SUBLET_ARRAY_INDEX"), 1u);
  std::vector<std::string> names;
  for (const auto& [k, v] : EnvOf(sync.desired[0])) names.push_back(k);
  for (const char* by_worker : {"CUDA_VISIBLE_DEVICES", "SUBLET_CONTROL", "SUBLET_CONTROL_TOKEN"}) {
    names.push_back(by_worker);
  }
  for (const std::string& name : names) {
    protocols::JobSpec spec = Spec(1, 1);
    spec.env[name] = "/srv/sublet/globex/1/checkpoints";
    absl::Status s = protocols::ValidateJobSpec(spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(std::string(s.message()), HasSubstr("reserved")) << name;
  }
}

// max_jobs_per_tenant counts jobs that have not ended, across a restart: a
// job that ends gives its place back, and another tenant is never counted.
TEST_F(ClusterTest, TheJobLimitPerTenantFreesAPlaceWhenAJobEnds) {
  config_.max_jobs_per_tenant = 1;
  uint64_t first = Submit(Spec(1, 1));
  auto refused = InTxn([&] { return cluster_->Submit("acme", Spec(1, 1)); });
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(InTxn([&] { return cluster_->Submit("globex", Spec(1, 1)); }).ok());
  ASSERT_TRUE(cluster_->Recover().ok());
  EXPECT_FALSE(InTxn([&] { return cluster_->Submit("acme", Spec(1, 1)); }).ok())
      << "a restart recounts the open jobs";
  Do([&] { return cluster_->Cancel(first, "acme"); });
  EXPECT_TRUE(InTxn([&] { return cluster_->Submit("acme", Spec(1, 1)); }).ok());
}

TEST_F(ClusterTest, SucceedsWhenEveryRankExitsZero) {
  Report("node-a");
  uint64_t id = Submit(Spec(1, 2));
  Schedule();
  auto sync = Report("node-a", Exits(id, "node-a", {{0, 0}, {1, 0}}));
  EXPECT_EQ(JobById(id).state, JobState::kSucceeded);
  EXPECT_THAT(sync.acked_exits, SizeIs(2));
  EXPECT_EQ(cluster_->FreeGpus(*cluster_->FindNode("node-a")), 2u);
}

TEST_F(ClusterTest, FailingRankStopsGangAndRestartsUntilMaxRestarts) {
  Report("node-a");
  Report("node-b");
  uint64_t id = Submit(Spec(2, 1, /*max_restarts=*/1));
  Schedule();
  Report("node-a", Exits(id, "node-a", {{0, 3}}));
  EXPECT_EQ(JobById(id).state, JobState::kPending);
  EXPECT_EQ(JobById(id).restarts, 1u);
  // Rank 1 is told to stop, and the job waits for it before a new attempt.
  EXPECT_THAT(cluster_->SyncFor(*cluster_->FindNode("node-b")).desired, SizeIs(0));
  Schedule();
  EXPECT_EQ(JobById(id).attempt, 1u);
  Report("node-b", Exits(id, "node-b", {{1, 143}}));
  Schedule();
  EXPECT_EQ(JobById(id).attempt, 2u);
  EXPECT_EQ(JobById(id).state, JobState::kRunning);
  Report("node-b", Exits(id, "node-b", {{1, 1}}));
  EXPECT_EQ(JobById(id).state, JobState::kFailed);
  EXPECT_THAT(JobById(id).reason, HasSubstr("max_restarts (1) reached"));
}

TEST_F(ClusterTest, CancelKeepsGpusTakenUntilRanksExit) {
  Report("node-a");
  uint64_t id = Submit(Spec(1, 2));
  Schedule();
  Do([&] { return cluster_->Cancel(id, "acme"); });
  EXPECT_EQ(JobById(id).state, JobState::kCancelled);
  EXPECT_EQ(cluster_->FreeGpus(*cluster_->FindNode("node-a")), 0u);
  Report("node-a", Exits(id, "node-a", {{0, 143}, {1, 143}}));
  EXPECT_EQ(cluster_->FreeGpus(*cluster_->FindNode("node-a")), 2u);
  EXPECT_FALSE(JobById(id).stopping);
}

TEST_F(ClusterTest, CancelOfEndedJobIsRefused) {
  Report("node-a");
  uint64_t id = Submit(Spec(1, 1));
  Do([&] { return cluster_->Cancel(id, "acme"); });
  absl::Status again = InTxn([&] { return cluster_->Cancel(id, "acme"); });
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ClusterTest, SilentNodeBecomesLostAndItsJobIsRequeuedWithoutCounting) {
  Report("node-a");
  Report("node-b");
  uint64_t id = Submit(Spec(2, 1, 0));
  Schedule();
  clock_.Advance(absl::Seconds(6));
  Report("node-a", Exits(id, "node-a", {}));
  clock_.Advance(absl::Seconds(6));
  Do([&] { return cluster_->CheckTimeouts(); });
  EXPECT_EQ(cluster_->FindNode("node-b")->state, NodeState::kLost);
  EXPECT_EQ(cluster_->FindNode("node-a")->state, NodeState::kReady);
  EXPECT_EQ(JobById(id).state, JobState::kPending);
  EXPECT_EQ(JobById(id).restarts, 0u);
  EXPECT_THAT(JobById(id).reason, HasSubstr("node node-b was lost"));
}

TEST_F(ClusterTest, LaunchesNameTheTenantItsNumberAndTheStorageRoot) {
  Report("node-a");
  protocols::JobSpec spec = Spec(1, 2);
  uint64_t id = InTxn([&] { return *cluster_->Submit("globex", spec); });
  Schedule();
  auto sync = cluster_->SyncFor(*cluster_->FindNode("node-a"));
  ASSERT_THAT(sync.desired, SizeIs(2));
  EXPECT_EQ(sync.desired[0].tenant, "globex");
  // Tenants are numbered in name order the first time: acme 1, globex 2.
  EXPECT_EQ(sync.desired[0].tenant_number, 2u);
  EXPECT_EQ(sync.desired[0].storage_root, config_.storage_root);
  EXPECT_EQ(EnvOf(sync.desired[0])["SUBLET_CHECKPOINT_DIR"],
            config_.storage_root + "/globex/" + std::to_string(id) + "/checkpoints");
}

TEST_F(ClusterTest, AnotherWorkerClaimingAConnectedNodeIsRefused) {
  Report("node-a", {}, "inc-1", 2, "instance-a");
  uint64_t id = Submit(Spec(1, 2, 0));
  Schedule();
  protocols::WorkerReport imposter;
  imposter.node = "node-a";
  imposter.incarnation = "inc-9";
  imposter.instance = "instance-b";
  imposter.gpus = {{0, "emulated", 0}, {1, "emulated", 0}};
  absl::StatusOr<protocols::WorkerSync> refused =
      InTxn([&] { return cluster_->OnWorkerReport(imposter, "peer-x"); });
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("connected from another worker"));
  // The job on the real node-a runs on, untouched.
  EXPECT_EQ(JobById(id).state, JobState::kRunning);
  EXPECT_EQ(JobById(id).attempt, 1u);
  EXPECT_EQ(cluster_->FindNode("node-a")->incarnation, "inc-1");
  // The same instance restarting is a restart.
  Report("node-a", {}, "inc-2", 2, "instance-a");
  EXPECT_EQ(JobById(id).state, JobState::kPending);
}

TEST_F(ClusterTest, ALostNodesNameMayBeTakenByAnotherWorker) {
  Report("node-a", {}, "inc-1", 2, "instance-a");
  clock_.Advance(absl::Seconds(11));
  Do([&] { return cluster_->CheckTimeouts(); });
  ASSERT_EQ(cluster_->FindNode("node-a")->state, NodeState::kLost);
  Report("node-a", {}, "inc-2", 2, "instance-b");
  EXPECT_EQ(cluster_->FindNode("node-a")->state, NodeState::kReady);
  EXPECT_EQ(cluster_->FindNode("node-a")->instance, "instance-b");
}

TEST_F(ClusterTest, AnElasticJobThatMayStartSmallStartsOnWhatThereIsAndGrowsBack) {
  Report("node-a");
  protocols::JobSpec spec = Spec(2, 2, 1);
  spec.elastic_min_nodes = 1;
  spec.elastic_start_any = true;
  uint64_t id = Submit(spec);
  protocols::JobSpec waits = Spec(2, 2);
  waits.elastic_min_nodes = 1;  // start: full
  uint64_t full = Submit(waits);
  Schedule();
  EXPECT_EQ(JobById(id).state, JobState::kRunning);
  EXPECT_THAT(JobById(id).ranks, SizeIs(2)) << "one node of two";
  EXPECT_EQ(JobById(full).state, JobState::kPending);
  // A second node joins; the next attempt (after a failure) takes both.
  Report("node-b");
  Report("node-a", Exits(id, "node-a", {{0, 1}, {1, 1}}));
  Schedule();
  EXPECT_EQ(JobById(id).state, JobState::kRunning);
  EXPECT_THAT(JobById(id).ranks, SizeIs(4)) << "grown back to two nodes";
}

TEST_F(ClusterTest, FailureRestartsBackOffExponentiallyAndSayWhy) {
  config_.restart_backoff_base = absl::Seconds(10);
  config_.restart_backoff_max = absl::Seconds(25);
  Report("node-a");
  uint64_t id = Submit(Spec(1, 2, 5));
  const absl::Duration expected[] = {absl::Seconds(10), absl::Seconds(20), absl::Seconds(25),
                                     absl::Seconds(25)};
  for (absl::Duration wait : expected) {
    Schedule();
    ASSERT_EQ(JobById(id).state, JobState::kRunning);
    Report("node-a", Exits(id, "node-a", {{0, 1}, {1, 1}}));
    Schedule();
    EXPECT_EQ(JobById(id).state, JobState::kPending);
    EXPECT_THAT(JobById(id).reason, HasSubstr("restart backoff: restart"));
    clock_.Advance(wait - absl::Seconds(1));
    Do([&] { return cluster_->CheckTimeouts(); });
    Schedule();
    EXPECT_EQ(JobById(id).state, JobState::kPending) << "placed before its backoff ran out";
    clock_.Advance(absl::Seconds(1));
    Report("node-a");
    Do([&] { return cluster_->CheckTimeouts(); });
  }
  Schedule();
  EXPECT_EQ(JobById(id).state, JobState::kRunning);
  EXPECT_EQ(JobById(id).restarts, 4u);
}

TEST_F(ClusterTest, ABackoffSurvivesACoordinatorRestart) {
  config_.restart_backoff_base = absl::Minutes(1);
  Report("node-a");
  uint64_t id = Submit(Spec(1, 2, 1));
  Schedule();
  Report("node-a", Exits(id, "node-a", {{0, 1}, {1, 1}}));
  ASSERT_TRUE(cluster_->Recover().ok());
  Schedule();
  EXPECT_EQ(JobById(id).state, JobState::kPending);
  clock_.Advance(absl::Minutes(1));
  Report("node-a");
  Do([&] { return cluster_->CheckTimeouts(); });
  Schedule();
  EXPECT_EQ(JobById(id).state, JobState::kRunning);
}

TEST_F(ClusterTest, RestartedWorkerLosesItsOldRanks) {
  Report("node-a");
  uint64_t id = Submit(Spec(1, 2, 0));
  Schedule();
  Report("node-a", {}, "inc-2");
  EXPECT_EQ(JobById(id).state, JobState::kPending);
  EXPECT_FALSE(JobById(id).stopping);
}

TEST_F(ClusterTest, ExitSeventyFiveRequeuesAsPreemption) {
  Report("node-a");
  uint64_t id = Submit(Spec(1, 2, 0));
  Schedule();
  Report("node-a", Exits(id, "node-a", {{0, 75}, {1, 75}}));
  EXPECT_EQ(JobById(id).state, JobState::kPending);
  EXPECT_EQ(JobById(id).preemptions, 1u);
  EXPECT_EQ(JobById(id).restarts, 0u);
}

TEST_F(ClusterTest, TimeLimitFailsRunningJob) {
  Report("node-a");
  protocols::JobSpec spec = Spec(1, 1);
  spec.time_limit = absl::Minutes(5);
  uint64_t id = Submit(spec);
  Schedule();
  clock_.Advance(absl::Minutes(4));
  Report("node-a", Exits(id, "node-a", {}));
  clock_.Advance(absl::Minutes(2));
  Report("node-a", Exits(id, "node-a", {}));
  Do([&] { return cluster_->CheckTimeouts(); });
  EXPECT_EQ(JobById(id).state, JobState::kFailed);
  EXPECT_THAT(JobById(id).reason, HasSubstr("time limit"));
}

TEST_F(ClusterTest, RejectsMoreGpusPerNodeThanAnyNodeHas) {
  Report("node-a");
  absl::StatusOr<uint64_t> id = InTxn([&] { return cluster_->Submit("acme", Spec(1, 4)); });
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(id.status().message()), HasSubstr("resources.gpus_per_node"));
}

TEST_F(ClusterTest, StrayRankBlocksNodeUntilStopped) {
  Report("node-a");
  std::vector<protocols::RankStatus> stray = {{{999, 1, 0}, false, 0}};
  Report("node-a", stray);
  uint64_t id = Submit(Spec(1, 1));
  Schedule();
  EXPECT_EQ(JobById(id).state, JobState::kPending);
  Report("node-a", {});
  Schedule();
  EXPECT_EQ(JobById(id).state, JobState::kRunning);
}

TEST_F(ClusterTest, RecoverRestoresRunningJobsAndTheirPlacement) {
  Report("node-a");
  uint64_t id = Submit(Spec(1, 2));
  Schedule();
  Cluster recovered(*store_, clock_, config_);
  ASSERT_TRUE(recovered.Recover().ok());
  const Job* job = recovered.FindJob(id);
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->state, JobState::kRunning);
  EXPECT_THAT(job->ranks, SizeIs(2));
  EXPECT_THAT(recovered.SyncFor(*recovered.FindNode("node-a")).desired, SizeIs(2));
}

TEST_F(ClusterTest, JobSubmittedBeforeARecoveredNodeReportsStartsOnItsFirstReport) {
  Report("node-a");
  ASSERT_TRUE(cluster_->Recover().ok());  // the node is known, but not connected yet
  uint64_t id = Submit(Spec(1, 1));
  Schedule();
  EXPECT_EQ(JobById(id).state, JobState::kPending);
  EXPECT_FALSE(cluster_->NeedsScheduling());
  Report("node-a");  // the same worker, reconnected
  EXPECT_TRUE(cluster_->NeedsScheduling()) << "the node's first report must trigger a pass";
  Schedule();
  EXPECT_EQ(JobById(id).state, JobState::kRunning);
}

TEST_F(ClusterTest, ReportWithoutIncarnationIsRefused) {
  protocols::WorkerReport r;
  r.node = "node-a";
  auto sync = InTxn([&] { return cluster_->OnWorkerReport(r, "peer"); });
  EXPECT_EQ(sync.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sublet::coordinator

namespace sublet::coordinator {
namespace {

class ClusterProgressTest : public ClusterTest {
 protected:
  void SetUp() override {
    ClusterTest::SetUp();
    config_.heartbeat_timeout = absl::Hours(10);  // silence here is about progress only
  }

  // Reports rank 0 of `id` on node-a as running with `progress`.
  void ReportProgress(uint64_t id, protocols::Progress progress) {
    const Job& job = JobById(id);
    progress.time_unix_ms = absl::ToUnixMillis(clock_.Now());
    protocols::RankStatus status{{job.id, job.attempt, 0}, false, 0, progress, ""};
    Report("node-a", {status});
  }
};

TEST_F(ClusterProgressTest, RestartsAJobThatStopsMakingProgress) {
  Report("node-a");
  protocols::JobSpec spec = Spec(1, 1, /*max_restarts=*/1);
  spec.progress_timeout = absl::Minutes(1);
  uint64_t id = Submit(spec);
  Schedule();
  clock_.Advance(absl::Seconds(50));
  ReportProgress(id, {.step = 10});
  clock_.Advance(absl::Seconds(50));
  Do([&] { return cluster_->CheckTimeouts(); });
  EXPECT_EQ(JobById(id).state, JobState::kRunning) << "progress 50s ago is within the timeout";
  clock_.Advance(absl::Seconds(20));
  Do([&] { return cluster_->CheckTimeouts(); });
  EXPECT_EQ(JobById(id).state, JobState::kPending);
  EXPECT_EQ(JobById(id).restarts, 1u);
  EXPECT_THAT(JobById(id).reason, HasSubstr("no progress for 1m (last step 10)"));
}

TEST_F(ClusterProgressTest, JobWithoutProgressTimeoutIsNeverRestartedForSilence) {
  Report("node-a");
  uint64_t id = Submit(Spec(1, 1));
  Schedule();
  clock_.Advance(absl::Hours(5));
  Report("node-a", Exits(id, "node-a", {}));
  Do([&] { return cluster_->CheckTimeouts(); });
  EXPECT_EQ(JobById(id).state, JobState::kRunning);
}

TEST_F(ClusterProgressTest, RankZerosCommittedCheckpointBecomesTheJobsAndIsStored) {
  Report("node-a");
  uint64_t id = Submit(Spec(1, 1));
  Schedule();
  ReportProgress(id, {.step = 60, .checkpoint_step = 50});
  EXPECT_EQ(JobById(id).last_checkpoint_step, 50);
  Cluster recovered(*store_, clock_, config_);
  ASSERT_TRUE(recovered.Recover().ok());
  EXPECT_EQ(recovered.FindJob(id)->last_checkpoint_step, 50);
}

TEST_F(ClusterProgressTest, FailedRanksLastLineIsInTheReason) {
  Report("node-a");
  uint64_t id = Submit(Spec(1, 1));
  Schedule();
  auto exits = Exits(id, "node-a", {{0, 1}});
  exits[0].message = "DeadlineExceeded: allreduce timed out waiting for rank 1";
  Report("node-a", exits);
  EXPECT_EQ(JobById(id).state, JobState::kFailed);
  EXPECT_THAT(JobById(id).reason, HasSubstr("exited with code 1: DeadlineExceeded"));
}

}  // namespace
}  // namespace sublet::coordinator
