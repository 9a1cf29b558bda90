// Saving: the directory it leaves, async save through staging buffers,
// retention, and the errors callers can cause.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/checkpoint/test_util.h"

namespace sublet::checkpoint::testing {
namespace {

namespace stdfs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : stdfs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  return names;
}

TEST(SaveTest, WritesOneShardPerRankManifestAndCommit) {
  ScratchDir dir;
  PosixFileSystem fs;
  ASSERT_TRUE(SaveWorld(fs, dir.path(), 2, 2, 400).ok());
  EXPECT_THAT(Entries(dir.path()), UnorderedElementsAre("step-00000400"));
  EXPECT_THAT(Entries(dir.path() + "/step-00000400"),
              UnorderedElementsAre("MANIFEST", "COMMIT", "shard-00000.bin", "shard-00001.bin",
                                   "shard-00002.bin", "shard-00003.bin"));
  absl::StatusOr<Manifest> m = VerifyCheckpoint(fs, dir.path() + "/step-00000400");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->dp, 2);
  EXPECT_EQ(m->tp, 2);
  EXPECT_EQ(m->cursor.step, 400);
}

TEST(SaveTest, ReplicasAreWrittenOnceAndSpreadOverDataParallelRanks) {
  ScratchDir dir;
  PosixFileSystem fs;
  ASSERT_TRUE(SaveWorld(fs, dir.path(), 2, 1, 1).ok());
  absl::StatusOr<Manifest> m = VerifyCheckpoint(fs, dir.path() + "/step-00000001");
  ASSERT_TRUE(m.ok());
  uint64_t model_bytes = 0;
  for (const TensorSpec& t : SyntheticSpecs()) model_bytes += LocalBytes(t, 1, 0);
  EXPECT_EQ(m->TotalBytes(), model_bytes);  // not dp times
  // The big tensors are split evenly, so neither rank writes much more.
  const double a = static_cast<double>(m->files[0].size), b = static_cast<double>(m->files[1].size);
  EXPECT_LT(std::max(a, b) / std::min(a, b), 1.1);
}

TEST(SaveTest, RefusesAStepAlreadyCommitted) {
  ScratchDir dir;
  PosixFileSystem fs;
  ASSERT_TRUE(SaveWorld(fs, dir.path(), 1, 2, 5).ok());
  absl::Status again = SaveWorld(fs, dir.path(), 1, 2, 5);
  EXPECT_TRUE(absl::IsAlreadyExists(again)) << again;
  EXPECT_TRUE(VerifyCheckpoint(fs, dir.path() + "/step-00000005").ok());
}

TEST(SaveTest, RanksThatDisagreeOnTheStepSaveNothing) {
  ScratchDir dir;
  PosixFileSystem fs;
  InProcessGroups groups(2);
  const std::vector<TensorSpec> specs = SyntheticSpecs();
  std::vector<absl::Status> statuses = RunRanks(2, [&](int r) {
    RankState state = MakeRankState(specs, 1, 0, 1);
    Cursor cursor{1 + r, 0, ""};
    return SaveCheckpoint(fs, groups.Member(r), SmallSaveOptions(dir.path(), Topo(2, 1, r)), cursor,
                          state.shards)
        .status();
  });
  for (const absl::Status& s : statuses) {
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("disagree"));
  }
  EXPECT_FALSE(stdfs::exists(dir.path() + "/step-00000001"));
}

TEST(SaveTest, RejectsAShardOfTheWrongSize) {
  ScratchDir dir;
  PosixFileSystem fs;
  SoloGroup group;
  RankState state = MakeRankState(SyntheticSpecs(), 1, 0, 1);
  state.shards[0].size -= 4;
  absl::Status s =
      SaveCheckpoint(fs, group, SmallSaveOptions(dir.path(), Topo(1, 1, 0)), {1, 0, ""}, state.shards)
          .status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("'embed'"));
}

TEST(SaveTest, LoadRejectsATensorOfAnotherShape) {
  ScratchDir dir;
  PosixFileSystem fs;
  ASSERT_TRUE(SaveWorld(fs, dir.path(), 1, 1, 1).ok());
  SoloGroup group;
  std::vector<TensorSpec> specs = {{"embed", DType::kF32, {301, 64}, 0}};
  RankState state = MakeRankState(specs, 1, 0, 1);
  absl::StatusOr<LoadResult> loaded =
      LoadCheckpoint(fs, group, {dir.path(), Topo(1, 1, 0), std::nullopt, 1 << 20}, state.shards);
  EXPECT_TRUE(absl::IsNotFound(loaded.status()));
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("'embed'"));
}

// --- retention ----------------------------------------------------------------

TEST(RetentionTest, KeepsNewestKCommitted) {
  ScratchDir dir;
  PosixFileSystem fs;
  for (int step = 1; step <= 5; ++step) ASSERT_TRUE(SaveWorld(fs, dir.path(), 1, 2, step, 2).ok());
  EXPECT_THAT(Entries(dir.path()), UnorderedElementsAre("step-00000004", "step-00000005"));
}

TEST(RetentionTest, CorruptNewerCheckpointsDoNotCountTowardsKeep) {
  ScratchDir dir;
  PosixFileSystem fs;
  ASSERT_TRUE(SaveWorld(fs, dir.path(), 1, 1, 1).ok());
  ASSERT_TRUE(SaveWorld(fs, dir.path(), 1, 1, 2).ok());
  stdfs::remove(dir.path() + "/step-00000002/COMMIT");
  stdfs::create_directories(dir.path() + "/.tmp-step-00000003");
  ASSERT_TRUE(ApplyRetention(fs, dir.path(), 1, std::nullopt, "").ok());
  // Step 1 is the one a resume needs; the leftover temporary directory goes.
  EXPECT_THAT(Entries(dir.path()), UnorderedElementsAre("step-00000001", "step-00000002"));
}

TEST(RetentionTest, NeverDeletesTheProtectedStep) {
  ScratchDir dir;
  PosixFileSystem fs;
  for (int step = 1; step <= 4; ++step) ASSERT_TRUE(SaveWorld(fs, dir.path(), 1, 1, step).ok());
  ASSERT_TRUE(ApplyRetention(fs, dir.path(), 1, 2, "").ok());
  EXPECT_THAT(Entries(dir.path()), UnorderedElementsAre("step-00000002", "step-00000004"));
}

TEST(RetentionTest, DeletesOnlyCheckpointsOfItsOwnLineage) {
  ScratchDir dir;
  PosixFileSystem fs;
  for (int step = 1; step <= 3; ++step) {
    ASSERT_TRUE(SaveWorld(fs, dir.path(), 1, 1, step, 0, "another-run").ok());
  }
  for (int step = 10; step <= 12; ++step) {
    ASSERT_TRUE(SaveWorld(fs, dir.path(), 1, 1, step, 1, "this-run").ok());
  }
  EXPECT_THAT(Entries(dir.path()), UnorderedElementsAre("step-00000001", "step-00000002",
                                                        "step-00000003", "step-00000012"));
}

TEST(RetentionTest, LeavesStepsItCannotAttributeToItsLineage) {
  ScratchDir dir;
  PosixFileSystem fs;
  ASSERT_TRUE(SaveWorld(fs, dir.path(), 1, 1, 1, 0, "mine").ok());
  stdfs::remove(dir.path() + "/step-00000001/COMMIT");  // partial: whose is it?
  stdfs::create_directories(dir.path() + "/step-00000002");  // corrupt: no files at all
  for (int step = 3; step <= 5; ++step) ASSERT_TRUE(SaveWorld(fs, dir.path(), 1, 1, step, 1, "mine").ok());
  EXPECT_THAT(Entries(dir.path()),
              UnorderedElementsAre("step-00000001", "step-00000002", "step-00000005"));
}

// --- async ----------------------------------------------------------------------

// Steps 1..last each load (at dp1 x tp1) and hold that step's bytes.
void ExpectStepsHoldTheirBytes(FileSystem& fs, const std::string& dir,
                               const std::vector<TensorSpec>& specs, int64_t last) {
  for (int64_t step = 1; step <= last; ++step) {
    InProcessGroups load_groups(1);
    RankState state = MakeRankState(specs, 1, 0, 0, false);
    absl::StatusOr<LoadResult> loaded = LoadCheckpoint(
        fs, load_groups.Member(0), {dir, Topo(1, 1, 0), step, 1 << 20}, state.shards);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_TRUE(HoldsStep(state, 1, 0, step)) << step;
  }
}

TEST(CheckpointerTest, AsyncSaveCommitsTheSnapshotNotLaterWrites) {
  ScratchDir dir;
  PosixFileSystem fs;
  InProcessGroups groups(2);
  const std::vector<TensorSpec> specs = SyntheticSpecs();
  std::vector<absl::Status> statuses = RunRanks(2, [&](int r) -> absl::Status {
    Topology t = Topo(1, 2, r);
    std::vector<int64_t> done;
    Checkpointer ckpt(fs, groups.Member(r), SmallSaveOptions(dir.path(), t),
                      [&](const absl::StatusOr<SaveStats>& s) { done.push_back(s.ok() ? s->step : -1); });
    for (int64_t step = 1; step <= 3; ++step) {
      RankState state = MakeRankState(specs, 2, t.tp_rank, step);
      SUBLET_RETURN_IF_ERROR(ckpt.SaveAsync({step, 0, ""}, state.shards));
      // Training goes on and overwrites its buffers while the writer runs.
      for (auto& b : state.buffers) std::fill(b.begin(), b.end(), std::byte{0xee});
    }
    SUBLET_ASSIGN_OR_RETURN(SaveStats last, ckpt.Wait());
    EXPECT_EQ(last.step, 3);
    EXPECT_EQ(ckpt.last_committed_step(), 3);
    EXPECT_EQ(done, (std::vector<int64_t>{1, 2, 3}));
    // The synchronous mode (preemption) after async ones.
    RankState state = MakeRankState(specs, 2, t.tp_rank, 4);
    return ckpt.Save({4, 0, ""}, state.shards).status();
  });
  for (const absl::Status& s : statuses) ASSERT_TRUE(s.ok()) << s;
  ExpectStepsHoldTheirBytes(fs, dir.path(), specs, 4);
}

// Double buffering, as the trainer does it: lend the state, keep reading it,
// write the next state into the other buffers, wait, lend those.
TEST(CheckpointerTest, LentSavesCommitTheLentBuffersWithoutCopying) {
  ScratchDir dir;
  FaultyFileSystem fs;  // records where each shard write takes its bytes from
  InProcessGroups groups(2);
  const std::vector<TensorSpec> specs = SyntheticSpecs();
  RankState buffers_of[2][2];
  std::vector<absl::Status> statuses = RunRanks(2, [&](int r) -> absl::Status {
    Topology t = Topo(1, 2, r);
    Checkpointer ckpt(fs, groups.Member(r), SmallSaveOptions(dir.path(), t));
    RankState* buffers = buffers_of[r];
    buffers[0] = MakeRankState(specs, 2, t.tp_rank, 1);
    buffers[1] = MakeRankState(specs, 2, t.tp_rank, 0, false);
    for (int64_t step = 1; step <= 3; ++step) {
      RankState& lent = buffers[(step - 1) % 2];
      SUBLET_RETURN_IF_ERROR(ckpt.SaveAsyncLent({step, 0, ""}, lent.shards));
      RankState next = MakeRankState(specs, 2, t.tp_rank, step + 1);
      RankState& other = buffers[step % 2];
      for (size_t i = 0; i < other.buffers.size(); ++i) {
        std::copy(next.buffers[i].begin(), next.buffers[i].end(), other.buffers[i].begin());
      }
    }
    SUBLET_ASSIGN_OR_RETURN(SaveStats last, ckpt.Wait());
    EXPECT_EQ(last.step, 3);
    return absl::OkStatus();
  });
  for (const absl::Status& s : statuses) ASSERT_TRUE(s.ok()) << s;
  ExpectStepsHoldTheirBytes(fs, dir.path(), specs, 3);
  // Every byte written to a shard file came straight from a lent buffer:
  // nothing was copied first.
  uint64_t model_bytes = 0;
  for (const TensorSpec& spec : specs) model_bytes += GlobalBytes(spec, 1).size();
  uint64_t appended = 0;
  for (const FaultyFileSystem::Source& a : fs.ShardAppends()) {
    bool inside = false;
    for (auto& rank : buffers_of) {
      for (const RankState& state : rank) {
        for (const std::vector<std::byte>& b : state.buffers) {
          inside |= a.data >= b.data() && a.data + a.size <= b.data() + b.size();
        }
      }
    }
    EXPECT_TRUE(inside) << "a shard write of " << a.size << " bytes from outside the lent buffers";
    appended += a.size;
  }
  EXPECT_EQ(appended, 3 * model_bytes);  // three steps, each byte of the model once
}

TEST(CheckpointerTest, LentSaveRefusesABadShardBeforeReturning) {
  PosixFileSystem fs;
  SoloGroup group;
  Checkpointer ckpt(fs, group, SmallSaveOptions("/nonexistent", Topo(1, 1, 0)));
  RankState state = MakeRankState(SyntheticSpecs(), 1, 0, 1);
  state.shards[1].size -= 4;
  EXPECT_TRUE(absl::IsInvalidArgument(ckpt.SaveAsyncLent({1, 0, ""}, state.shards)));
  EXPECT_TRUE(absl::IsFailedPrecondition(ckpt.Wait().status()));
}

TEST(CheckpointerTest, AsyncSaveRefusesABadShardBeforeReturning) {
  PosixFileSystem fs;
  SoloGroup group;
  Checkpointer ckpt(fs, group, SmallSaveOptions("/nonexistent", Topo(1, 1, 0)));
  RankState state = MakeRankState(SyntheticSpecs(), 1, 0, 1);
  state.shards[0].size += 1;
  EXPECT_TRUE(absl::IsInvalidArgument(ckpt.SaveAsync({1, 0, ""}, state.shards)));
}

TEST(CheckpointerTest, WaitBeforeAnySaveIsFailedPrecondition) {
  PosixFileSystem fs;
  SoloGroup group;
  Checkpointer ckpt(fs, group, SmallSaveOptions("/nonexistent", Topo(1, 1, 0)));
  EXPECT_TRUE(absl::IsFailedPrecondition(ckpt.Wait().status()));
  EXPECT_FALSE(ckpt.last_committed_step().has_value());
}

TEST(CheckpointerTest, AsyncFailureIsReportedByWait) {
  ScratchDir dir;
  FaultyFileSystem fs;
  fs.space_left = 0;
  SoloGroup group;
  Checkpointer ckpt(fs, group, SmallSaveOptions(dir.path(), Topo(1, 1, 0)));
  RankState state = MakeRankState(SyntheticSpecs(), 1, 0, 1);
  ASSERT_TRUE(ckpt.SaveAsync({1, 0, ""}, state.shards).ok());
  EXPECT_TRUE(absl::IsResourceExhausted(ckpt.Wait().status()));
  EXPECT_FALSE(ckpt.last_committed_step().has_value());
}

}  // namespace
}  // namespace sublet::checkpoint::testing
