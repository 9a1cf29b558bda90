#include "coordinator/scheduler.h"
#include "tests/coordinator/sched_results.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sublet::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

SchedNode Node(const std::string& name, uint32_t total, uint32_t free) {
  SchedNode n{name, total, {}, true};
  for (uint32_t g = total - free; g < total; ++g) n.free_gpus.push_back(g);
  return n;
}

SchedJob Job(uint64_t id, uint32_t nodes, uint32_t gpus, uint64_t order = 0, int priority = 1,
             absl::Duration limit = absl::ZeroDuration()) {
  return {id, priority, order, nodes, gpus, limit};
}

TEST(SchedulerTest, PlacesWholeGangAcrossDistinctNodes) {
  auto r = Schedule({Node("a", 2, 2), Node("b", 2, 2)}, {}, {Job(1, 2, 2)}, kNow);
  ASSERT_EQ(r.placements.size(), 1u);
  EXPECT_THAT(r.placements[0].nodes, ElementsAre(0, 1));
  EXPECT_THAT(r.placements[0].gpus, ElementsAre(ElementsAre(0, 1), ElementsAre(0, 1)));
}

TEST(SchedulerTest, PlacesNothingWhenOnlyPartOfTheGangFits) {
  auto r = Schedule({Node("a", 2, 2), Node("b", 2, 1)}, {}, {Job(1, 2, 2)}, kNow);
  EXPECT_THAT(r.placements, IsEmpty());
  EXPECT_EQ(ReasonOf(r, 1), "needs 2 nodes with 2 free GPUs; 1 has them");
}

TEST(SchedulerTest, ElasticJobStartsOnAsManyNodesAsFitDownToItsMinimum) {
  SchedJob elastic = Job(1, 3, 2);
  elastic.min_nodes = 1;
  auto r = Schedule({Node("a", 2, 2), Node("b", 2, 2), Node("c", 2, 0)}, {}, {elastic}, kNow);
  ASSERT_EQ(r.placements.size(), 1u);
  EXPECT_EQ(r.placements[0].nodes.size(), 2u);
}

TEST(SchedulerTest, ElasticJobLargerThanTheClusterWaitsWithoutCrashing) {
  SchedJob elastic = Job(1, 3, 2);
  elastic.min_nodes = 2;
  auto r = Schedule({Node("a", 2, 2), Node("b", 2, 1)}, {}, {elastic}, kNow);
  EXPECT_TRUE(r.placements.empty());
  ASSERT_EQ(r.waiting.size(), 1u);
  EXPECT_EQ(r.head_job, 1u);
}

TEST(SchedulerTest, GivesFreeGpuIndicesOnly) {
  auto r = Schedule({Node("a", 4, 2)}, {}, {Job(1, 1, 2)}, kNow);
  ASSERT_EQ(r.placements.size(), 1u);
  EXPECT_THAT(r.placements[0].gpus[0], ElementsAre(2, 3));
}

TEST(SchedulerTest, PrefersFullestNodeThatFits) {
  auto r = Schedule({Node("a", 4, 4), Node("b", 4, 1)}, {}, {Job(1, 1, 1)}, kNow);
  ASSERT_EQ(r.placements.size(), 1u);
  EXPECT_THAT(r.placements[0].nodes, ElementsAre(1));
}

TEST(SchedulerTest, OrdersByPriorityThenSubmitOrder) {
  // 1: low priority; 2 and 3: normal, 2 submitted first; 4: high.
  std::vector<SchedJob> jobs = {Job(1, 1, 2, 1, 0), Job(2, 1, 2, 2, 1), Job(3, 1, 2, 3, 1),
                                Job(4, 1, 2, 4, 2)};
  auto r = Schedule({Node("a", 2, 2), Node("b", 2, 2)}, {}, jobs, kNow);
  EXPECT_THAT(Placed(r), ElementsAre(4u, 2u));
}

TEST(SchedulerTest, HeadJobBlocksSmallerJobWithoutTimeLimit) {
  // Job 1 needs both nodes; "a" is busy forever; job 2 would take "b".
  std::vector<SchedRunning> running = {{0, 2, absl::InfiniteFuture()}};
  auto r = Schedule({Node("a", 2, 0), Node("b", 2, 2)}, running, {Job(1, 2, 2, 1), Job(2, 1, 2, 2)},
                    kNow);
  EXPECT_THAT(r.placements, IsEmpty());
  EXPECT_EQ(r.head_job, 1u);
  EXPECT_THAT(ReasonOf(r, 2), HasSubstr("waiting behind job 1"));
}

TEST(SchedulerTest, BackfillsJobThatEndsBeforeTheHeadCanStart) {
  // Job 1 is the head; job 2 runs past its shadow time, job 3 ends before it.
  std::vector<SchedRunning> running = {{0, 2, kNow + absl::Hours(2)}};
  auto r = Schedule(
      {Node("a", 2, 0), Node("b", 2, 2)}, running,
      {Job(1, 2, 2, 1), Job(2, 1, 2, 2, 1, absl::Hours(3)), Job(3, 1, 2, 3, 1, absl::Hours(1))},
      kNow);
  EXPECT_THAT(Placed(r), ElementsAre(3u));
  EXPECT_THAT(ReasonOf(r, 2), HasSubstr("waiting behind job 1"));
}

TEST(SchedulerTest, BackfillsOnNodesTheHeadDoesNotNeed) {
  // Head job 1: 2 nodes x 2 GPUs; only c has room now, so it reserves c and a.
  // Job 2 fits on b, which the head does not need; job 3 needs all of c.
  std::vector<SchedRunning> running = {{0, 2, absl::InfiniteFuture()},
                                       {1, 1, absl::InfiniteFuture()}};
  auto r = Schedule({Node("a", 2, 0), Node("b", 2, 1), Node("c", 4, 4)}, running,
                    {Job(1, 2, 2, 1), Job(2, 1, 1, 2), Job(3, 1, 4, 3)}, kNow);
  EXPECT_EQ(r.head_job, 1u);
  ASSERT_THAT(Placed(r), ElementsAre(2u));
  EXPECT_THAT(r.placements[0].nodes, ElementsAre(1));
  EXPECT_THAT(ReasonOf(r, 3), HasSubstr("waiting behind job 1"));
}

TEST(SchedulerTest, BackfillUsesSpareGpusOfReservedNodes) {
  // The head needs 2 nodes x 2 of 4 GPUs; "a" is half busy forever, so at the
  // shadow time each reserved node still has 2 GPUs to spare.
  std::vector<SchedRunning> running = {{0, 3, absl::InfiniteFuture()}};
  auto r = Schedule({Node("a", 4, 1), Node("b", 4, 4)}, running, {Job(1, 2, 2, 1), Job(2, 1, 2, 2)},
                    kNow);
  EXPECT_THAT(Placed(r), ElementsAre(2u));
}

TEST(SchedulerTest, ImpossibleJobReservesNothingAndSaysWhy) {
  auto r =
      Schedule({Node("a", 2, 2), Node("b", 2, 2)}, {}, {Job(1, 3, 2, 1), Job(2, 2, 2, 2)}, kNow);
  EXPECT_THAT(Placed(r), ElementsAre(2u));
  EXPECT_EQ(ReasonOf(r, 1), "needs 3 nodes with 2 GPUs; the cluster has 2 such ready nodes");
  EXPECT_EQ(r.head_job, 0u);
}

TEST(SchedulerTest, TooManyGpusPerNodeSaysLargestNode) {
  auto r = Schedule({Node("a", 2, 2)}, {}, {Job(3, 1, 8)}, kNow);
  EXPECT_EQ(ReasonOf(r, 3), "needs 8 GPUs per node; no ready node has that many (largest: 2)");
}

TEST(SchedulerTest, IgnoresUnschedulableNodes) {
  SchedNode lost = Node("a", 2, 2);
  lost.schedulable = false;
  auto r = Schedule({lost, Node("b", 2, 2)}, {}, {Job(1, 2, 1)}, kNow);
  EXPECT_THAT(r.placements, IsEmpty());
  EXPECT_EQ(ReasonOf(r, 1), "needs 2 nodes with 1 GPU; the cluster has 1 such ready node");
}

TEST(SchedulerTest, NoNodesAtAllIsAReason) {
  auto r = Schedule({}, {}, {Job(1, 1, 1)}, kNow);
  EXPECT_EQ(ReasonOf(r, 1), "no ready nodes in the cluster");
}

TEST(SchedulerTest, JobsPlacedInOnePassDoNotShareGpus) {
  auto r =
      Schedule({Node("a", 4, 4)}, {}, {Job(1, 1, 2, 1), Job(2, 1, 2, 2), Job(3, 1, 1, 3)}, kNow);
  ASSERT_EQ(r.placements.size(), 2u);
  EXPECT_THAT(r.placements[0].gpus[0], ElementsAre(0, 1));
  EXPECT_THAT(r.placements[1].gpus[0], ElementsAre(2, 3));
  EXPECT_THAT(ReasonOf(r, 3), "needs 1 node with 1 free GPU; 0 have them");
}

}  // namespace
}  // namespace sublet::coordinator
