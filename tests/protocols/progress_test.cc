// Merging a rank's partial progress reports (protocols/progress.h).
#include "protocols/progress.h"

#include <cmath>

#include <gtest/gtest.h>

namespace sublet::protocols {
namespace {

TEST(MergeProgressTest, ACheckpointOnlyReportKeepsTheStepLossAndThroughput) {
  Progress p;
  MergeProgress(p, {.step = 40, .loss = 2.75, .tokens_per_s = 900, .time_unix_ms = 10});
  MergeProgress(p, {.checkpoint_step = 40, .time_unix_ms = 20, .checkpoint_bytes = 4096,
                    .checkpoint_persist_s = 0.3});
  EXPECT_EQ(p.step, 40);
  EXPECT_DOUBLE_EQ(p.loss, 2.75);
  EXPECT_DOUBLE_EQ(p.tokens_per_s, 900);
  EXPECT_EQ(p.checkpoint_step, 40);
  EXPECT_EQ(p.checkpoint_bytes, 4096);
  EXPECT_DOUBLE_EQ(p.checkpoint_persist_s, 0.3);
  EXPECT_EQ(p.time_unix_ms, 20);
}

TEST(MergeProgressTest, AStepOnlyReportKeepsTheCheckpoint) {
  Progress p;
  MergeProgress(p, {.checkpoint_step = 30, .time_unix_ms = 5, .checkpoint_bytes = 10});
  MergeProgress(p, {.step = 33, .loss = 1.5, .time_unix_ms = 6});
  EXPECT_EQ(p.step, 33);
  EXPECT_EQ(p.checkpoint_step, 30);
  EXPECT_EQ(p.checkpoint_bytes, 10);
}

TEST(MergeProgressTest, ACheckpointNeverGoesBackAndAStepWithoutALossSaysSo) {
  Progress p;
  MergeProgress(p, {.step = 50, .loss = 2.0, .checkpoint_step = 50, .time_unix_ms = 9});
  MergeProgress(p, {.step = 51, .loss = std::nan(""), .checkpoint_step = 40, .time_unix_ms = 8});
  EXPECT_EQ(p.checkpoint_step, 50);
  EXPECT_EQ(p.step, 51);
  EXPECT_TRUE(std::isnan(p.loss)) << "the loss of step 50 is not shown as step 51's";
  EXPECT_EQ(p.time_unix_ms, 9);
}

}  // namespace
}  // namespace sublet::protocols
