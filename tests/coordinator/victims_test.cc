#include "coordinator/victims.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sublet::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

TEST(ChooseVictimsTest, IdleNodesGoFirst) {
  std::vector<VictimNode> nodes = {{"a", 8, {1}}, {"b", 8, {}}, {"c", 8, {2}}};
  std::map<uint64_t, VictimJob> jobs = {{1, {0, 1}}, {2, {0, 1}}};
  auto choice = ChooseVictims(nodes, jobs, 8);
  ASSERT_TRUE(choice.ok());
  EXPECT_THAT(choice->nodes, ElementsAre("b"));
  EXPECT_TRUE(choice->jobs.empty());
}

TEST(ChooseVictimsTest, FewestJobsTouchedBeatsPriority) {
  // Node a runs two low-priority jobs, node b one high-priority job.
  std::vector<VictimNode> nodes = {{"a", 8, {1, 2}}, {"b", 8, {3}}};
  std::map<uint64_t, VictimJob> jobs = {{1, {0, 0}}, {2, {0, 0}}, {3, {2, 0}}};
  auto choice = ChooseVictims(nodes, jobs, 8);
  ASSERT_TRUE(choice.ok());
  EXPECT_THAT(choice->nodes, ElementsAre("b"));
  EXPECT_THAT(choice->jobs, ElementsAre(3u));
}

TEST(ChooseVictimsTest, LowerPriorityThenLessWorkSinceCheckpoint) {
  std::vector<VictimNode> nodes = {{"a", 4, {1}}, {"b", 4, {2}}, {"c", 4, {3}}};
  std::map<uint64_t, VictimJob> jobs = {{1, {1, 10}}, {2, {0, 500}}, {3, {0, 20}}};
  auto choice = ChooseVictims(nodes, jobs, 4);
  ASSERT_TRUE(choice.ok());
  EXPECT_THAT(choice->nodes, ElementsAre("c"));
  auto two = ChooseVictims(nodes, jobs, 8);
  ASSERT_TRUE(two.ok());
  EXPECT_THAT(two->nodes, ElementsAre("c", "b"));
}

TEST(ChooseVictimsTest, AGangsOtherNodesCostNothingMore) {
  // Job 1 spans a and b; job 2 runs alone on c. Taking a touches job 1, and
  // then b is free to take without touching anyone new.
  std::vector<VictimNode> nodes = {{"a", 2, {1}}, {"b", 2, {1}}, {"c", 2, {2}}};
  std::map<uint64_t, VictimJob> jobs = {{1, {0, 5}}, {2, {0, 50}}};
  auto choice = ChooseVictims(nodes, jobs, 4);
  ASSERT_TRUE(choice.ok());
  EXPECT_THAT(choice->nodes, UnorderedElementsAre("a", "b"));
  EXPECT_THAT(choice->jobs, ElementsAre(1u));
  EXPECT_EQ(choice->why.count(1), 1u);
}

// More GPUs than the cluster can give is invalid input (exit 2 at the CLI).
TEST(ChooseVictimsTest, NotEnoughGpusIsInvalidArgument) {
  std::vector<VictimNode> nodes = {{"a", 2, {}}};
  auto choice = ChooseVictims(nodes, {}, 3);
  EXPECT_EQ(choice.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sublet::coordinator
