#include "coordinator/accounting.h"

#include <gtest/gtest.h>

namespace sublet::coordinator {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'000'000);

Job Running(uint32_t ranks, absl::Time start) {
  Job job;
  job.id = 1;
  job.start_time = start;
  job.ranks.resize(ranks);
  return job;
}

TEST(AccountingTest, AnAttemptUsesOneGpuSecondPerRankPerSecond) {
  Job job = Running(4, kT0);
  EXPECT_DOUBLE_EQ(AttemptGpuSeconds(job, kT0 + absl::Seconds(10)), 40);
}

TEST(AccountingTest, NoAttemptAndTimeBeforeTheStartCountNothing) {
  EXPECT_DOUBLE_EQ(AttemptGpuSeconds(Running(4, absl::InfinitePast()), kT0), 0);
  EXPECT_DOUBLE_EQ(AttemptGpuSeconds(Running(4, kT0), kT0 - absl::Seconds(5)), 0);
  EXPECT_DOUBLE_EQ(WorkSinceCheckpoint(Running(0, kT0), kT0 + absl::Seconds(5)), 0);
  EXPECT_DOUBLE_EQ(WorkSinceCheckpoint(Running(2, absl::InfinitePast()), kT0), 0);
}

TEST(AccountingTest, WorkSinceCheckpointCountsFromTheLaterOfStartAndCheckpoint) {
  Job job = Running(2, kT0);
  EXPECT_DOUBLE_EQ(WorkSinceCheckpoint(job, kT0 + absl::Seconds(30)), 60);
  job.last_checkpoint_time = kT0 + absl::Seconds(20);
  EXPECT_DOUBLE_EQ(WorkSinceCheckpoint(job, kT0 + absl::Seconds(30)), 20);
  // A checkpoint of an earlier attempt saves nothing of this one.
  job.last_checkpoint_time = kT0 - absl::Seconds(100);
  EXPECT_DOUBLE_EQ(WorkSinceCheckpoint(job, kT0 + absl::Seconds(30)), 60);
}

TEST(AccountingTest, UsedAddsTheRunningAttemptOnlyWhileItHasLiveRanks) {
  Job job = Running(2, kT0);
  job.gpu_seconds = 100;
  const absl::Time now = kT0 + absl::Seconds(10);
  EXPECT_DOUBLE_EQ(GpuSecondsUsed(job, now), 120);
  for (RankRecord& r : job.ranks) r.exited = true;
  EXPECT_DOUBLE_EQ(GpuSecondsUsed(job, now), 100) << "an ended attempt is in gpu_seconds";
}

}  // namespace
}  // namespace sublet::coordinator
