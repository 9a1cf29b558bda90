// The reclaim transaction in the coordinator's state machine: drain, notice,
// acknowledgement or deadline, handover, requeue, elastic resume, release,
// and a coordinator restart in the middle.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "coordinator/cluster.h"
#include "tests/coordinator/cluster_fixture.h"

namespace sublet::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

class ReclaimTest : public ClusterTest {
 protected:
  absl::StatusOr<uint64_t> TryReclaim(std::vector<std::string> nodes, uint32_t gpus,
                                      int64_t deadline_ms = 60000,
                                      std::string reason = "eval sprint") {
    protocols::ReclaimRequest r{std::move(nodes), gpus, deadline_ms, std::move(reason)};
    return InTxn([&] { return cluster_->StartReclaim("infra", r); });
  }
  uint64_t Reclaim(std::vector<std::string> nodes, uint32_t gpus = 0) {
    auto id = TryReclaim(std::move(nodes), gpus);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.value_or(0);
  }
  // Rank 0 of `id` (on `node`) reports a committed checkpoint.
  void ReportCheckpoint(uint64_t id, const std::string& node, int64_t step) {
    auto ranks = Exits(id, node, {});
    for (auto& r : ranks) {
      r.progress = {step, 2.5, 100, step, absl::ToUnixMillis(clock_.Now()), 4096, 0.5};
    }
    Report(node, ranks);
  }
  const coordinator::Reclaim& ReclaimById(uint64_t id) { return *cluster_->FindReclaim(id); }
  const Node& NodeByName(const std::string& n) { return *cluster_->FindNode(n); }

  // Two nodes of two GPUs and one 2x2 job on them, elastic down to 1 node.
  uint64_t RunningTwoNodeJob() {
    Report("node-a");
    Report("node-b");
    protocols::JobSpec spec = Spec(2, 2);
    spec.elastic_min_nodes = 1;
    uint64_t id = Submit(spec);
    Schedule();
    EXPECT_EQ(JobById(id).state, JobState::kRunning);
    return id;
  }
};

TEST_F(ReclaimTest, NamedNodeIsDrainedAndEveryRankOfTheVictimGetsTheNotice) {
  uint64_t job = RunningTwoNodeJob();
  uint64_t r = Reclaim({"node-b"});
  EXPECT_EQ(JobById(job).state, JobState::kPreempting);
  EXPECT_EQ(NodeByName("node-b").state, NodeState::kDraining);
  EXPECT_EQ(NodeByName("node-a").state, NodeState::kReady);
  EXPECT_EQ(ReclaimById(r).state, ReclaimState::kDraining);
  ASSERT_THAT(ReclaimById(r).victims, SizeIs(1));
  EXPECT_THAT(ReclaimById(r).victims[0].why, HasSubstr("node-b"));
  // The whole gang hears it, on both nodes, with the deadline.
  for (const char* node : {"node-a", "node-b"}) {
    auto sync = cluster_->SyncFor(NodeByName(node));
    ASSERT_THAT(sync.notices, SizeIs(2)) << node;
    EXPECT_EQ(sync.notices[0].deadline_unix_ms, absl::ToUnixMillis(clock_.Now()) + 60000);
    EXPECT_THAT(sync.desired, SizeIs(2)) << "ranks keep running while they save";
  }
  EXPECT_THAT(JobById(job).preempt_why, HasSubstr("eval sprint"));
}

TEST_F(ReclaimTest, AcknowledgedCheckpointRequeuesResumesOnFewerNodesAndHandsOver) {
  uint64_t job = RunningTwoNodeJob();
  uint64_t r = Reclaim({"node-b"});
  clock_.Advance(absl::Seconds(2));
  ReportCheckpoint(job, "node-a", 40);
  Report("node-a", Exits(job, "node-a", {{0, 75}, {1, 75}}));
  EXPECT_EQ(JobById(job).state, JobState::kPreempting) << "waits for every rank";
  EXPECT_EQ(NodeByName("node-b").state, NodeState::kDraining);
  Report("node-b", Exits(job, "node-b", {{2, 75}, {3, 75}}));

  const Job& j = JobById(job);
  EXPECT_EQ(j.state, JobState::kPending);
  EXPECT_EQ(j.preemptions, 1u);
  EXPECT_EQ(j.restarts, 0u);
  EXPECT_EQ(j.resume_step, 40);
  EXPECT_EQ(NodeByName("node-b").state, NodeState::kReclaimed);
  EXPECT_EQ(ReclaimById(r).state, ReclaimState::kReclaimed);
  EXPECT_EQ(ReclaimById(r).victims[0].state, VictimState::kAcknowledged);
  EXPECT_EQ(ReclaimById(r).victims[0].checkpoint_step, 40);

  Schedule();
  EXPECT_EQ(JobById(job).state, JobState::kRunning);
  EXPECT_THAT(JobById(job).ranks, SizeIs(2)) << "elastic: one node of two";
  EXPECT_EQ(JobById(job).ranks[0].node, "node-a");
}

TEST_F(ReclaimTest, PreemptionNeverCountsAgainstMaxRestarts) {
  Report("node-a");
  uint64_t job = Submit(Spec(1, 2, /*max_restarts=*/0));
  Schedule();
  Reclaim({"node-a"});
  Report("node-a", Exits(job, "node-a", {{0, 75}, {1, 1}}));
  EXPECT_EQ(JobById(job).state, JobState::kPending);
  EXPECT_EQ(JobById(job).restarts, 0u);
  EXPECT_EQ(JobById(job).preemptions, 1u);
}

TEST_F(ReclaimTest, RankKilledAtTheDeadlineResumesFromThePreviousCheckpoint) {
  uint64_t job = RunningTwoNodeJob();
  ReportCheckpoint(job, "node-a", 20);
  clock_.Advance(absl::Seconds(30));
  uint64_t r = Reclaim({"node-b"});
  clock_.Advance(absl::Seconds(61));
  Report("node-a", Exits(job, "node-a", {}));
  Report("node-b", Exits(job, "node-b", {}));
  Do([&] { return cluster_->CheckTimeouts(); });
  EXPECT_EQ(JobById(job).state, JobState::kPreempting);
  EXPECT_TRUE(JobById(job).deadline_noted);
  Report("node-a", Exits(job, "node-a", {{0, 137}, {1, 137}}));
  Report("node-b", Exits(job, "node-b", {{2, 137}, {3, 137}}));
  const Job& j = JobById(job);
  EXPECT_EQ(j.state, JobState::kPending);
  EXPECT_EQ(j.resume_step, 20);
  EXPECT_EQ(ReclaimById(r).victims[0].state, VictimState::kKilled);
  // 4 GPUs x 91 s of work after the step-20 checkpoint must be redone.
  EXPECT_NEAR(j.gpu_seconds_lost, 4 * 91.0, 0.5);
  EXPECT_NEAR(j.gpu_seconds, 4 * 91.0, 0.5);
  EXPECT_EQ(NodeByName("node-b").state, NodeState::kReclaimed);
}

TEST_F(ReclaimTest, GpuCountTakesIdleNodesFirstThenTheLowestPriorityJob) {
  Report("node-a");
  Report("node-b");
  Report("node-c");
  protocols::JobSpec high = Spec(1, 2);
  high.priority = protocols::Priority::kHigh;
  protocols::JobSpec low = Spec(1, 2);
  low.priority = protocols::Priority::kLow;
  uint64_t high_job = Submit(high);
  Schedule();
  uint64_t low_job = Submit(low);
  Schedule();
  ASSERT_EQ(JobById(high_job).state, JobState::kRunning);
  ASSERT_EQ(JobById(low_job).state, JobState::kRunning);
  const std::string low_node = JobById(low_job).ranks[0].node;
  const std::string high_node = JobById(high_job).ranks[0].node;
  std::string idle;
  for (const char* n : {"node-a", "node-b", "node-c"}) {
    if (n != low_node && n != high_node) idle = n;
  }

  uint64_t first = Reclaim({}, 2);
  EXPECT_THAT(ReclaimById(first).nodes, ElementsAre(idle));
  EXPECT_THAT(ReclaimById(first).victims, SizeIs(0));
  EXPECT_EQ(ReclaimById(first).state, ReclaimState::kReclaimed) << "an idle node is handed over at once";

  uint64_t second = Reclaim({}, 2);
  EXPECT_THAT(ReclaimById(second).nodes, ElementsAre(low_node));
  ASSERT_THAT(ReclaimById(second).victims, SizeIs(1));
  EXPECT_EQ(ReclaimById(second).victims[0].job_id, low_job);
  EXPECT_EQ(JobById(high_job).state, JobState::kRunning);
  EXPECT_THAT(JobById(low_job).preempt_why, HasSubstr("fewest jobs"));
}

TEST_F(ReclaimTest, BadRequestsAreRefusedNamingTheProblem) {
  RunningTwoNodeJob();
  auto code = [](const absl::StatusOr<uint64_t>& s) { return s.status().code(); };
  EXPECT_EQ(code(TryReclaim({"node-a"}, 2)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(TryReclaim({}, 0)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(TryReclaim({"node-z"}, 0)), absl::StatusCode::kNotFound);
  EXPECT_EQ(code(TryReclaim({"node-a", "node-a"}, 0)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(TryReclaim({"node-a"}, 0, 0)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(TryReclaim({"node-a"}, 0, 60000, "")), absl::StatusCode::kInvalidArgument);
  auto too_many = TryReclaim({}, 5);
  EXPECT_EQ(code(too_many), absl::StatusCode::kInvalidArgument) << "exit 2 at the CLI";
  EXPECT_THAT(std::string(too_many.status().message()), HasSubstr("only 4 GPUs"));
  Reclaim({"node-a"});
  auto twice = TryReclaim({"node-a"}, 0);
  EXPECT_EQ(code(twice), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(twice.status().message()), HasSubstr("already held by reclaim 1"));
}

TEST_F(ReclaimTest, ReleaseMakesTheNodesSchedulableAgain) {
  uint64_t job = RunningTwoNodeJob();
  uint64_t r = Reclaim({"node-a", "node-b"});
  Report("node-a", Exits(job, "node-a", {{0, 75}, {1, 75}}));
  Report("node-b", Exits(job, "node-b", {{2, 75}, {3, 75}}));
  Schedule();
  EXPECT_EQ(JobById(job).state, JobState::kPending);
  EXPECT_THAT(JobById(job).reason, HasSubstr("no ready nodes"));

  auto released = InTxn([&] {
    return cluster_->Release("infra", protocols::ReleaseRequest{r, {}});
  });
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(ReclaimById(r).state, ReclaimState::kReleased);
  EXPECT_EQ(NodeByName("node-a").state, NodeState::kReady);
  Schedule();
  EXPECT_EQ(JobById(job).state, JobState::kRunning);
  EXPECT_THAT(JobById(job).ranks, SizeIs(4)) << "capacity returned: full size again";

  auto again = InTxn([&] { return cluster_->Release("infra", protocols::ReleaseRequest{r, {}}); });
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  auto not_held = InTxn([&] {
    return cluster_->Release("infra", protocols::ReleaseRequest{0, {"node-a"}});
  });
  EXPECT_EQ(not_held.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ReclaimTest, CoordinatorRestartBetweenNoticeAndAcknowledgementFinishesTheTransaction) {
  uint64_t job = RunningTwoNodeJob();
  uint64_t r = Reclaim({"node-b"});
  ReportCheckpoint(job, "node-a", 60);

  // A new coordinator over the same store.
  cluster_ = std::make_unique<Cluster>(*store_, clock_, config_);
  ASSERT_TRUE(cluster_->Recover().ok());
  EXPECT_EQ(JobById(job).state, JobState::kPreempting);
  EXPECT_EQ(NodeByName("node-b").state, NodeState::kDraining);
  auto sync = Report("node-b", Exits(job, "node-b", {}));
  EXPECT_THAT(sync.notices, SizeIs(2)) << "the notice is repeated after the restart";

  Report("node-a", Exits(job, "node-a", {{0, 75}, {1, 75}}));
  Report("node-b", Exits(job, "node-b", {{2, 75}, {3, 75}}));
  EXPECT_EQ(JobById(job).state, JobState::kPending);
  EXPECT_EQ(JobById(job).resume_step, 60);
  EXPECT_EQ(NodeByName("node-b").state, NodeState::kReclaimed);
  EXPECT_EQ(ReclaimById(r).state, ReclaimState::kReclaimed);
}

TEST_F(ReclaimTest, ReclaimedNodeStaysReclaimedWhenItsWorkerGoesSilentOrReturns) {
  Report("node-a");
  Reclaim({"node-a"});
  EXPECT_EQ(NodeByName("node-a").state, NodeState::kReclaimed);
  clock_.Advance(absl::Seconds(30));
  Do([&] { return cluster_->CheckTimeouts(); });
  EXPECT_EQ(NodeByName("node-a").state, NodeState::kReclaimed);
  Report("node-a", {}, "inc-2");
  EXPECT_EQ(NodeByName("node-a").state, NodeState::kReclaimed);
}

TEST_F(ReclaimTest, EveryCallIsAudited) {
  Report("node-a");
  uint64_t r = Reclaim({"node-a"});
  Do([&] { return cluster_->Release("infra", protocols::ReleaseRequest{r, {}}).status(); });
  auto audit = store_->Audit();
  ASSERT_TRUE(audit.ok());
  std::vector<std::string> actions;
  for (const auto& e : *audit) actions.push_back(e.action + ":" + e.who);
  EXPECT_THAT(actions, ElementsAre("reclaim:infra", "handover:scheduler", "release:infra"));
  EXPECT_THAT((*audit)[0].detail, HasSubstr("eval sprint"));
}

TEST_F(ReclaimTest, DeadlineThatLooksTooShortIsWarnedAbout) {
  uint64_t job = RunningTwoNodeJob();
  auto ranks = Exits(job, "node-a", {});
  for (auto& rs : ranks) rs.progress = {10, 2.5, 100, 10, absl::ToUnixMillis(clock_.Now()), 1 << 30, 9.0};
  Report("node-a", ranks);
  auto r = TryReclaim({"node-b"}, 0, /*deadline_ms=*/2000);
  ASSERT_TRUE(r.ok());
  ASSERT_THAT(ReclaimById(*r).warnings, SizeIs(1));
  EXPECT_THAT(ReclaimById(*r).warnings[0], HasSubstr("9.0s to write"));
  EXPECT_DOUBLE_EQ(ReclaimById(*r).victims[0].estimated_save_s, 9.0);
}

// ---- resume step and lost work across restarts (issue 16, part 3) -----

TEST_F(ReclaimTest, AFailureRestartResumesFromTheNewestCommittedCheckpointNotAStaleOne) {
  Report("node-a");
  uint64_t job = Submit(Spec(1, 2, /*max_restarts=*/3));
  Schedule();
  ReportCheckpoint(job, "node-a", 100);
  Report("node-a", Exits(job, "node-a", {{0, 75}, {1, 75}}));  // preempted at 100
  EXPECT_EQ(JobById(job).resume_step, 100);
  Schedule();
  ReportCheckpoint(job, "node-a", 150);
  Report("node-a", Exits(job, "node-a", {{1, 3}}));  // a rank crashes after step 150
  EXPECT_EQ(JobById(job).restarts, 1u);
  EXPECT_EQ(JobById(job).resume_step, 150);
  Report("node-a", Exits(job, "node-a", {{0, 143}}));
  clock_.Advance(absl::Seconds(11));  // past the restart backoff (10s)
  Report("node-a");
  Schedule();
  ReportCheckpoint(job, "node-a", 350);
  Report("node-a", Exits(job, "node-a", {{0, 1}, {1, 1}}));
  EXPECT_EQ(JobById(job).resume_step, 350);
  auto events = store_->Events(job);
  ASSERT_TRUE(events.ok());
  std::vector<std::string> restarting, started;
  for (const protocols::JobEvent& e : *events) {
    if (e.kind == "restarting") restarting.push_back(e.message);
    if (e.kind == "started") started.push_back(e.message);
  }
  ASSERT_EQ(restarting.size(), 2u);
  EXPECT_THAT(restarting[0], HasSubstr("resumes from step 150"));
  EXPECT_THAT(restarting[1], HasSubstr("resumes from step 350"));
  ASSERT_EQ(started.size(), 3u);
  EXPECT_THAT(started[2], HasSubstr("resumes from checkpoint step 150"));
}

TEST_F(ReclaimTest, ACheckpointReportedAfterAFailedExitMovesTheResumeStep) {
  Report("node-a");
  uint64_t job = Submit(Spec(1, 2, /*max_restarts=*/1));
  Schedule();
  Report("node-a", Exits(job, "node-a", {{0, 1}, {1, 1}}));
  EXPECT_EQ(JobById(job).resume_step, -1);
  // Rank 0's report of the commit it made just before crashing comes late.
  auto late = Exits(job, "node-a", {{0, 1}, {1, 1}});
  late[0].progress = {20, 2.5, 100, 20, absl::ToUnixMillis(clock_.Now()), 4096, 0.5};
  Report("node-a", late);
  EXPECT_EQ(JobById(job).resume_step, 20);
}

TEST_F(ReclaimTest, ACheckpointOnlyReportKeepsTheLossTheRankReportedLast) {
  Report("node-a");
  uint64_t job = Submit(Spec(1, 2));
  Schedule();
  auto ranks = Exits(job, "node-a", {});
  ranks[0].progress = {12, 3.5, 800, -1, absl::ToUnixMillis(clock_.Now()), 0, 0};
  Report("node-a", ranks);
  ranks[0].progress = {-1, 0, 0, 12, absl::ToUnixMillis(clock_.Now()), 4096, 0.2};
  Report("node-a", ranks);
  const protocols::Progress& p = JobById(job).ranks[0].progress;
  EXPECT_EQ(p.step, 12);
  EXPECT_DOUBLE_EQ(p.loss, 3.5);
  EXPECT_EQ(p.checkpoint_step, 12);
  EXPECT_EQ(JobById(job).last_checkpoint_step, 12);
}

// Ranks that checkpoint at the agreed step and take 2.5 s to tear down
// (PyTorch's): none of it is work to redo.
TEST_F(ReclaimTest, AnAcknowledgedPreemptionCountsTeardownAfterTheCommitAsNoLostWork) {
  uint64_t job = RunningTwoNodeJob();
  clock_.Advance(absl::Seconds(30));
  uint64_t r = Reclaim({"node-b"});
  ReportCheckpoint(job, "node-a", 40);  // the agreed step, committed
  ReportCheckpoint(job, "node-b", 40);
  clock_.Advance(absl::Milliseconds(2500));
  Report("node-a", Exits(job, "node-a", {{0, 75}, {1, 75}}));
  Report("node-b", Exits(job, "node-b", {{2, 75}, {3, 75}}));
  EXPECT_EQ(ReclaimById(r).victims[0].state, VictimState::kAcknowledged);
  EXPECT_EQ(JobById(job).resume_step, 40);
  EXPECT_DOUBLE_EQ(JobById(job).gpu_seconds_lost, 0);
  EXPECT_NEAR(JobById(job).gpu_seconds, 4 * 32.5, 0.01);  // held, but not lost
}

TEST_F(ReclaimTest, StepsReportedAfterTheCheckpointAreLostWorkEvenWhenAcknowledged) {
  uint64_t job = RunningTwoNodeJob();
  ReportCheckpoint(job, "node-a", 40);
  clock_.Advance(absl::Seconds(3));
  auto ranks = Exits(job, "node-a", {});
  for (auto& rs : ranks) rs.progress = {45, 2.0, 100, -1, absl::ToUnixMillis(clock_.Now()), 0, 0};
  Report("node-a", ranks);
  clock_.Advance(absl::Seconds(2));
  Reclaim({"node-b"});
  Report("node-a", Exits(job, "node-a", {{0, 75}, {1, 75}}));
  Report("node-b", Exits(job, "node-b", {{2, 75}, {3, 75}}));
  // Steps 41-45 (3 s on 4 GPUs) are redone from step 40; the 2 s after are not work.
  EXPECT_NEAR(JobById(job).gpu_seconds_lost, 4 * 3.0, 0.01);
}

}  // namespace
}  // namespace sublet::coordinator
