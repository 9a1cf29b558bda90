#include "worker/rank_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sublet::worker {
namespace {

using protocols::RankLaunch;
using protocols::RankStatus;
using protocols::WorkerSync;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr char kIncarnation[] = "abc123";

RankKey Key(uint32_t rank, uint64_t job = 1, uint32_t attempt = 1) {
  return RankKey{.job_id = job, .attempt = attempt, .rank = rank};
}

RankLaunch Launch(const RankKey& key) {
  return RankLaunch{.key = key, .command = {"true"}, .env = {}, .gpus = {key.rank}};
}

WorkerSync Sync(std::vector<RankKey> desired, std::vector<RankKey> acked = {}) {
  WorkerSync sync;
  sync.incarnation = kIncarnation;
  for (const RankKey& key : desired) sync.desired.push_back(Launch(key));
  sync.acked_exits = std::move(acked);
  return sync;
}

std::vector<RankKey> Keys(const std::vector<RankLaunch>& launches) {
  std::vector<RankKey> keys;
  for (const RankLaunch& launch : launches) keys.push_back(launch.key);
  return keys;
}

class RankTableTest : public ::testing::Test {
 protected:
  // Applies `sync` and records a successful launch (pid 100 + rank) for
  // every launch it asks for.
  SyncPlan ApplyAndLaunch(const WorkerSync& sync) {
    std::optional<SyncPlan> plan = table_.ApplySync(sync);
    EXPECT_TRUE(plan.has_value());
    if (!plan) return {};
    for (const RankLaunch& launch : plan->launch) {
      table_.RecordLaunch(launch.key, 100 + static_cast<int>(launch.key.rank));
    }
    return *plan;
  }

  RankTable table_{kIncarnation};
};

TEST_F(RankTableTest, LaunchesEveryNewDesiredRank) {
  SyncPlan plan = ApplyAndLaunch(Sync({Key(0), Key(1)}));
  EXPECT_THAT(Keys(plan.launch), ElementsAre(Key(0), Key(1)));
  EXPECT_THAT(plan.stop, IsEmpty());
  EXPECT_EQ(table_.live_count(), 2u);
}

TEST_F(RankTableTest, DoesNotLaunchARunningRankAgain) {
  ApplyAndLaunch(Sync({Key(0)}));
  SyncPlan plan = ApplyAndLaunch(Sync({Key(0), Key(1)}));
  EXPECT_THAT(Keys(plan.launch), ElementsAre(Key(1)));
}

TEST_F(RankTableTest, LaunchesAKeyListedTwiceOnce) {
  WorkerSync sync = Sync({Key(0), Key(0)});
  SyncPlan plan = ApplyAndLaunch(sync);
  EXPECT_THAT(Keys(plan.launch), ElementsAre(Key(0)));
}

TEST_F(RankTableTest, NeverRelaunchesAnExitedRankStillDesired) {
  ApplyAndLaunch(Sync({Key(0)}));
  ASSERT_EQ(table_.RecordExit(100, 1), Key(0));
  SyncPlan plan = ApplyAndLaunch(Sync({Key(0)}));
  EXPECT_THAT(plan.launch, IsEmpty());
}

TEST_F(RankTableTest, NeverRelaunchesAnAckedExitStillDesired) {
  ApplyAndLaunch(Sync({Key(0)}));
  table_.RecordExit(100, 0);
  ApplyAndLaunch(Sync({Key(0)}, {Key(0)}));
  SyncPlan plan = ApplyAndLaunch(Sync({Key(0)}));
  EXPECT_THAT(plan.launch, IsEmpty());
}

TEST_F(RankTableTest, StopsRunningRanksNoLongerDesired) {
  ApplyAndLaunch(Sync({Key(0), Key(1)}));
  SyncPlan plan = ApplyAndLaunch(Sync({Key(1)}));
  EXPECT_THAT(plan.stop, ElementsAre(Key(0)));
}

TEST_F(RankTableTest, AsksToStopARankOnlyOnce) {
  ApplyAndLaunch(Sync({Key(0)}));
  SyncPlan first = ApplyAndLaunch(Sync({}));
  ASSERT_THAT(first.stop, ElementsAre(Key(0)));
  ASSERT_TRUE(table_.RecordStopRequested(Key(0), absl::FromUnixSeconds(10)));
  EXPECT_THAT(ApplyAndLaunch(Sync({})).stop, IsEmpty());
}

TEST_F(RankTableTest, DoesNotStopExitedRanks) {
  ApplyAndLaunch(Sync({Key(0)}));
  table_.RecordExit(100, 0);
  EXPECT_THAT(ApplyAndLaunch(Sync({})).stop, IsEmpty());
}

TEST_F(RankTableTest, ForgetsAckedExits) {
  ApplyAndLaunch(Sync({Key(0), Key(1)}));
  table_.RecordExit(100, 0);
  table_.RecordExit(101, 3);
  SyncPlan plan = ApplyAndLaunch(Sync({Key(0), Key(1)}, {Key(0)}));
  EXPECT_THAT(plan.forgotten, ElementsAre(Key(0)));
  EXPECT_THAT(table_.Statuses(),
              ElementsAre(RankStatus{.key = Key(1), .exited = true, .exit_code = 3}));
}

TEST_F(RankTableTest, DoesNotForgetARunningRankThatIsAcked) {
  ApplyAndLaunch(Sync({Key(0)}));
  SyncPlan plan = ApplyAndLaunch(Sync({Key(0)}, {Key(0)}));
  EXPECT_THAT(plan.forgotten, IsEmpty());
  EXPECT_TRUE(table_.IsLive(Key(0)));
}

TEST_F(RankTableTest, IgnoresSyncForAnotherIncarnation) {
  WorkerSync sync = Sync({Key(0)});
  sync.incarnation = "someone-else";
  EXPECT_FALSE(table_.ApplySync(sync).has_value());
  EXPECT_EQ(table_.launched_count(), 0u);
}

TEST_F(RankTableTest, DropsLaunchHistoryOfKeysNeitherDesiredNorLive) {
  ApplyAndLaunch(Sync({Key(0), Key(1)}));
  table_.RecordExit(100, 0);
  ApplyAndLaunch(Sync({Key(1)}, {Key(0)}));
  EXPECT_EQ(table_.launched_count(), 1u);
}

TEST_F(RankTableTest, KeepsLaunchHistoryOfAStoppingRank) {
  ApplyAndLaunch(Sync({Key(0)}));
  table_.RecordStopRequested(Key(0), absl::FromUnixSeconds(10));
  ApplyAndLaunch(Sync({}));
  EXPECT_EQ(table_.launched_count(), 1u);
  EXPECT_THAT(ApplyAndLaunch(Sync({Key(0)})).launch, IsEmpty());
}

TEST_F(RankTableTest, ReportsRunningRanksAndUnackedExits) {
  ApplyAndLaunch(Sync({Key(0), Key(1)}));
  table_.RecordExit(101, 137);
  EXPECT_THAT(table_.Statuses(),
              ElementsAre(RankStatus{.key = Key(0), .exited = false, .exit_code = 0},
                          RankStatus{.key = Key(1), .exited = true, .exit_code = 137}));
}

TEST_F(RankTableTest, ReportsALaunchFailureAsAnExit) {
  std::optional<SyncPlan> plan = table_.ApplySync(Sync({Key(0)}));
  ASSERT_TRUE(plan.has_value());
  table_.RecordLaunchFailure(Key(0), 127);
  EXPECT_THAT(table_.Statuses(),
              ElementsAre(RankStatus{.key = Key(0), .exited = true, .exit_code = 127}));
  EXPECT_THAT(ApplyAndLaunch(Sync({Key(0)})).launch, IsEmpty());
}

TEST_F(RankTableTest, HandsOutEachDueKillOnce) {
  ApplyAndLaunch(Sync({Key(0), Key(1)}));
  table_.RecordStopRequested(Key(0), absl::FromUnixSeconds(10));
  table_.RecordStopRequested(Key(1), absl::FromUnixSeconds(20));
  EXPECT_EQ(table_.NextKillDeadline(), absl::FromUnixSeconds(10));
  EXPECT_THAT(table_.TakeDueKills(absl::FromUnixSeconds(9)), IsEmpty());
  std::vector<RankRecord> due = table_.TakeDueKills(absl::FromUnixSeconds(10));
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].key, Key(0));
  EXPECT_THAT(table_.TakeDueKills(absl::FromUnixSeconds(15)), IsEmpty());
  EXPECT_EQ(table_.NextKillDeadline(), absl::FromUnixSeconds(20));
}

// A notice is delivered once; a repeat only moves the SIGKILL deadline
// earlier; a later stop request keeps the earlier deadline; the rank is
// killed once, at that deadline.
TEST_F(RankTableTest, ANoticeArmsTheKillOnceAndRepeatsOnlyMoveItEarlier) {
  ApplyAndLaunch(Sync({Key(0), Key(1)}));
  EXPECT_EQ(table_.NextKillDeadline(), std::nullopt);
  const RankRecord* first = table_.RecordNotice(Key(0), absl::FromUnixSeconds(30));
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->pid, 100);
  EXPECT_EQ(table_.RecordNotice(Key(0), absl::FromUnixSeconds(40)), nullptr);
  EXPECT_EQ(table_.NextKillDeadline(), absl::FromUnixSeconds(30));
  EXPECT_EQ(table_.RecordNotice(Key(0), absl::FromUnixSeconds(20)), nullptr);
  EXPECT_EQ(table_.NextKillDeadline(), absl::FromUnixSeconds(20));
  ASSERT_TRUE(table_.RecordStopRequested(Key(0), absl::FromUnixSeconds(25)));
  EXPECT_EQ(table_.NextKillDeadline(), absl::FromUnixSeconds(20));
  EXPECT_THAT(table_.TakeDueKills(absl::FromUnixSeconds(19)), IsEmpty());
  std::vector<RankRecord> due = table_.TakeDueKills(absl::FromUnixSeconds(20));
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].key, Key(0));
  EXPECT_THAT(table_.TakeDueKills(absl::FromUnixSeconds(100)), IsEmpty());
  // Unknown or exited ranks get nothing.
  EXPECT_EQ(table_.RecordNotice(Key(7), absl::FromUnixSeconds(1)), nullptr);
  table_.RecordExit(101, 75);
  EXPECT_EQ(table_.RecordNotice(Key(1), absl::FromUnixSeconds(1)), nullptr);
}

TEST_F(RankTableTest, RefusesToStopARankThatIsNotRunning) {
  EXPECT_FALSE(table_.RecordStopRequested(Key(0), absl::FromUnixSeconds(1)));
  ApplyAndLaunch(Sync({Key(0)}));
  table_.RecordExit(100, 0);
  EXPECT_FALSE(table_.RecordStopRequested(Key(0), absl::FromUnixSeconds(1)));
}

TEST_F(RankTableTest, IgnoresExitOfUnknownPid) {
  ApplyAndLaunch(Sync({Key(0)}));
  EXPECT_EQ(table_.RecordExit(999, 0), std::nullopt);
  EXPECT_TRUE(table_.IsLive(Key(0)));
}

TEST_F(RankTableTest, KeepsRanksOfDifferentAttemptsApart) {
  ApplyAndLaunch(Sync({Key(0, 1, 1)}));
  table_.RecordExit(100, 75);
  SyncPlan plan = table_.ApplySync(Sync({Key(0, 1, 2)})).value();
  EXPECT_THAT(Keys(plan.launch), ElementsAre(Key(0, 1, 2)));
}

}  // namespace
}  // namespace sublet::worker

namespace sublet::worker {
namespace {

class RankProgressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(table_.ApplySync(Sync({Key(0)})).has_value());
    table_.RecordLaunch(Key(0), 100, "secret-0");
  }
  RankTable table_{kIncarnation};
};

TEST_F(RankProgressTest, AcceptsProgressWithTheRanksOwnToken) {
  protocols::Progress p{.step = 7, .loss = 2.5, .checkpoint_step = 5, .time_unix_ms = 1};
  EXPECT_TRUE(table_.RecordProgress(Key(0), "secret-0", p));
  std::vector<RankStatus> statuses = table_.Statuses();
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].progress, p);
}

TEST_F(RankProgressTest, MergesPartialReportsInsteadOfReplacingThem) {
  EXPECT_TRUE(table_.RecordProgress(Key(0), "secret-0", {.step = 9, .loss = 3.25, .time_unix_ms = 1}));
  EXPECT_TRUE(table_.RecordProgress(Key(0), "secret-0", {.checkpoint_step = 9, .time_unix_ms = 2}));
  const protocols::Progress p = table_.Statuses()[0].progress;
  EXPECT_EQ(p.step, 9);
  EXPECT_DOUBLE_EQ(p.loss, 3.25) << "a checkpoint-only report does not zero the loss";
  EXPECT_EQ(p.checkpoint_step, 9);
}

TEST_F(RankProgressTest, RefusesProgressWithAnotherToken) {
  EXPECT_FALSE(table_.RecordProgress(Key(0), "guessed", {.step = 7}));
  EXPECT_FALSE(table_.RecordProgress(Key(0), "", {.step = 7}));
  EXPECT_EQ(table_.Statuses()[0].progress.step, -1);
}

TEST_F(RankProgressTest, RefusesProgressForUnknownOrForgottenRanks) {
  EXPECT_FALSE(table_.RecordProgress(Key(1), "secret-0", {.step = 7}));
  table_.RecordExit(100, 1);
  ASSERT_TRUE(table_.ApplySync(Sync({}, {Key(0)})).has_value());
  EXPECT_FALSE(table_.RecordProgress(Key(0), "secret-0", {.step = 8}));
}

TEST_F(RankProgressTest, AcceptsTheLastReportOfARankThatAlreadyExited) {
  // A rank reports its committed checkpoint and exits 75; the report can be
  // read after the exit.
  table_.RecordExit(100, 75);
  EXPECT_TRUE(table_.RecordProgress(Key(0), "secret-0", {.step = 8, .checkpoint_step = 8}));
  EXPECT_EQ(table_.Statuses()[0].progress.checkpoint_step, 8);
  EXPECT_TRUE(table_.Statuses()[0].exited);
}

TEST_F(RankProgressTest, ReportsTheExitMessageOfAFailedRank) {
  table_.RecordExit(100, 1);
  table_.RecordExitMessage(Key(0), "DeadlineExceeded: allreduce waited for rank 3");
  EXPECT_EQ(table_.Statuses()[0].message, "DeadlineExceeded: allreduce waited for rank 3");
}

}  // namespace
}  // namespace sublet::worker
