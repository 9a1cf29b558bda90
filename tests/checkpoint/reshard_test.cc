// Resharding: whatever (dp, tp) saved, any (dp, tp) loads it, optimizer
// state included, reading only what it needs.
#include <gtest/gtest.h>

#include "tests/checkpoint/test_util.h"

namespace sublet::checkpoint::testing {
namespace {

struct Case {
  int save_dp, save_tp, load_dp, load_tp;
};

class ReshardTest : public ::testing::TestWithParam<Case> {};

TEST_P(ReshardTest, LoadsWhatAnotherTopologySaved) {
  const Case c = GetParam();
  ScratchDir dir;
  PosixFileSystem fs;
  ASSERT_TRUE(SaveWorld(fs, dir.path(), c.save_dp, c.save_tp, 7).ok());
  WorldLoad load = LoadWorld(fs, dir.path(), c.load_dp, c.load_tp);
  ASSERT_TRUE(load.status.ok()) << load.status;
  EXPECT_EQ(load.result.step, 7);
  EXPECT_EQ(load.result.saved_dp, c.save_dp);
  EXPECT_EQ(load.result.saved_tp, c.save_tp);
  EXPECT_EQ(load.result.cursor.data_position, 7u * 32);
  EXPECT_EQ(load.result.cursor.rng_state, "rng@7");
  EXPECT_TRUE(load.all_hold_step);
}

std::vector<Case> AllPairs() {
  const std::pair<int, int> topologies[] = {{1, 1}, {2, 2}, {1, 2}, {4, 1}, {1, 4}, {2, 3}, {3, 1}};
  std::vector<Case> cases;
  for (auto [sd, st] : topologies) {
    for (auto [ld, lt] : topologies) cases.push_back({sd, st, ld, lt});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Topologies, ReshardTest, ::testing::ValuesIn(AllPairs()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           const Case& c = info.param;
                           return "Dp" + std::to_string(c.save_dp) + "Tp" + std::to_string(c.save_tp) +
                                  "ToDp" + std::to_string(c.load_dp) + "Tp" + std::to_string(c.load_tp);
                         });

TEST(ReshardReadTest, ReadsOnlyItsShare) {
  ScratchDir dir;
  PosixFileSystem fs;
  ASSERT_TRUE(SaveWorld(fs, dir.path(), 1, 1, 3).ok());
  // At tp 4 a rank needs about a quarter of each split tensor.
  InProcessGroups groups(4);
  const std::vector<TensorSpec> specs = {{"embed", DType::kF32, {300, 64}, 0}};
  std::vector<absl::Status> statuses = RunRanks(4, [&](int r) -> absl::Status {
    RankState mine = MakeRankState(specs, 4, r, 0, false);
    LoadOptions ro{dir.path(), Topo(1, 4, r), std::nullopt, 1 << 20};
    absl::StatusOr<LoadResult> loaded = LoadCheckpoint(fs, groups.Member(r), ro, mine.shards);
    if (!loaded.ok()) return loaded.status();
    const uint64_t whole = 300 * 64 * 4;
    // Block-aligned windows add at most two blocks per run.
    EXPECT_LE(loaded->bytes_read, whole / 4 + 2 * 4096);
    EXPECT_TRUE(HoldsStep(mine, 4, r, 3));
    return absl::OkStatus();
  });
  for (const absl::Status& s : statuses) EXPECT_TRUE(s.ok()) << s;
}

}  // namespace
}  // namespace sublet::checkpoint::testing
