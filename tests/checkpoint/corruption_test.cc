// Damaged checkpoints are detected, reported and passed over for the
// previous one; a full disk leaves the previous checkpoint intact.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "tests/checkpoint/test_util.h"

namespace sublet::checkpoint::testing {
namespace {

namespace stdfs = std::filesystem;
using ::testing::HasSubstr;

class CorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(SaveWorld(fs_, dir_.path(), 2, 2, 1).ok());
    ASSERT_TRUE(SaveWorld(fs_, dir_.path(), 2, 2, 2).ok());
  }
  std::string Step2(const std::string& file) const { return dir_.path() + "/step-00000002/" + file; }

  // Loads at DP1xTP2; expects step 1 with step 2 reported as skipped for `why`.
  void ExpectFallsBackToStep1(const std::string& why) {
    WorldLoad load = LoadWorld(fs_, dir_.path(), 1, 2);
    ASSERT_TRUE(load.status.ok()) << load.status;
    EXPECT_EQ(load.result.step, 1);
    EXPECT_TRUE(load.all_hold_step);
    ASSERT_EQ(load.result.skipped.size(), 1u);
    EXPECT_THAT(load.result.skipped[0], HasSubstr("step-00000002"));
    EXPECT_THAT(load.result.skipped[0], HasSubstr(why));
  }

  ScratchDir dir_;
  PosixFileSystem fs_;
};

TEST_F(CorruptionTest, FlippedShardByteFallsBackToPrevious) {
  FlipByte(Step2("shard-00001.bin"), 100);
  ExpectFallsBackToStep1("shard-00001.bin: checksum mismatch in bytes [0, 4096)");
}

TEST_F(CorruptionTest, FlippedByteDeepInAFileIsNamedWithItsBlock) {
  const uint64_t size = stdfs::file_size(Step2("shard-00000.bin"));
  ASSERT_GT(size, 2 * 4096u);  // several blocks (SmallSaveOptions: 4 KiB)
  FlipByte(Step2("shard-00000.bin"), size - 1);
  WorldLoad load = LoadWorld(fs_, dir_.path(), 1, 2);
  ASSERT_TRUE(load.status.ok()) << load.status;
  EXPECT_EQ(load.result.step, 1);
  ASSERT_EQ(load.result.skipped.size(), 1u);
  // The named range is the last block: it holds the flipped byte, is at
  // most one block long, and is not the file's first block.
  uint64_t begin = 0, end = 0;
  const std::string& why = load.result.skipped[0];
  const size_t at = why.find("shard-00000.bin: checksum mismatch in bytes [");
  ASSERT_NE(at, std::string::npos) << why;
  ASSERT_EQ(std::sscanf(why.c_str() + at, "shard-00000.bin: checksum mismatch in bytes [%lu, %lu)",
                        &begin, &end), 2) << why;
  EXPECT_LE(begin, size - 1);
  EXPECT_EQ(end, size);
  EXPECT_LE(end - begin, 4096u);
  EXPECT_GT(begin, 0u);
}

TEST_F(CorruptionTest, TruncatedShardFallsBackToPrevious) {
  Truncate(Step2("shard-00003.bin"), 10);
  ExpectFallsBackToStep1("shard-00003.bin: 10 bytes");
}

TEST_F(CorruptionTest, MissingShardFallsBackToPrevious) {
  stdfs::remove(Step2("shard-00002.bin"));
  ExpectFallsBackToStep1("shard-00002.bin: missing");
}

TEST_F(CorruptionTest, FlippedManifestByteFallsBackToPrevious) {
  FlipByte(Step2("MANIFEST"), 40);
  ExpectFallsBackToStep1("MANIFEST: does not match the checksum in COMMIT");
}

TEST_F(CorruptionTest, MissingCommitFallsBackToPrevious) {
  stdfs::remove(Step2("COMMIT"));
  ExpectFallsBackToStep1("COMMIT missing");
}

TEST_F(CorruptionTest, CorruptCommitFallsBackToPrevious) {
  FlipByte(Step2("COMMIT"), 20);
  ExpectFallsBackToStep1("COMMIT: corrupt");
}

TEST_F(CorruptionTest, NothingVerifiesIsNotFoundListingWhy) {
  FlipByte(Step2("shard-00000.bin"), 0);
  FlipByte(dir_.path() + "/step-00000001/MANIFEST", 30);
  WorldLoad load = LoadWorld(fs_, dir_.path(), 2, 2);
  EXPECT_TRUE(absl::IsNotFound(load.status));
  EXPECT_THAT(std::string(load.status.message()), HasSubstr("step-00000002"));
  EXPECT_THAT(std::string(load.status.message()), HasSubstr("step-00000001"));
}

TEST_F(CorruptionTest, EmptyDirectoryIsNotFound) {
  ScratchDir empty;
  EXPECT_TRUE(absl::IsNotFound(LoadWorld(fs_, empty.path(), 1, 1).status));
}

TEST_F(CorruptionTest, VerifyNamesTheBadFileAndOffset) {
  FlipByte(Step2("shard-00001.bin"), 5000);
  absl::StatusOr<Manifest> verified = VerifyCheckpoint(fs_, dir_.path() + "/step-00000002");
  EXPECT_TRUE(absl::IsDataLoss(verified.status()));
  EXPECT_THAT(std::string(verified.status().message()),
              HasSubstr("shard-00001.bin: checksum mismatch in bytes [4096, 8192)"));
  EXPECT_TRUE(VerifyCheckpoint(fs_, dir_.path() + "/step-00000001").ok());
}

TEST_F(CorruptionTest, ListShowsStates) {
  stdfs::remove(Step2("COMMIT"));
  stdfs::create_directories(dir_.path() + "/step-00000003");
  Truncate(dir_.path() + "/step-00000001/shard-00000.bin", 0);
  absl::StatusOr<std::vector<CheckpointInfo>> list = ListCheckpoints(fs_, dir_.path());
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].state, CheckpointState::kPartial);
  EXPECT_EQ((*list)[1].state, CheckpointState::kPartial);
  EXPECT_EQ((*list)[2].state, CheckpointState::kCorrupt);
  EXPECT_THAT((*list)[2].problem, HasSubstr("shard-00000.bin"));
}

// --- full disk ---------------------------------------------------------------

class FullDiskTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(FullDiskTest, LeavesPreviousCheckpointIntactWithClearError) {
  ScratchDir dir;
  FaultyFileSystem fs;
  ASSERT_TRUE(SaveWorld(fs, dir.path(), 2, 2, 1).ok());
  fs.space_left = GetParam();
  absl::Status full = SaveWorld(fs, dir.path(), 2, 2, 2);
  EXPECT_TRUE(absl::IsResourceExhausted(full)) << full;
  EXPECT_THAT(std::string(full.message()), HasSubstr("No space left on device"));
  fs.space_left = INT64_MAX;
  EXPECT_FALSE(stdfs::exists(dir.path() + "/step-00000002"));
  EXPECT_FALSE(stdfs::exists(dir.path() + "/.tmp-step-00000002"));
  WorldLoad load = LoadWorld(fs, dir.path(), 2, 2);
  ASSERT_TRUE(load.status.ok()) << load.status;
  EXPECT_EQ(load.result.step, 1);
  EXPECT_TRUE(load.all_hold_step);
  EXPECT_TRUE(load.result.skipped.empty());
  // Space comes back: the next save works.
  EXPECT_TRUE(SaveWorld(fs, dir.path(), 2, 2, 2).ok());
}

// No space at all, mid-shard, and just enough for the shards but not MANIFEST.
INSTANTIATE_TEST_SUITE_P(SpaceLeft, FullDiskTest, ::testing::Values(0, 20000, 175000));

TEST(FullDiskManifestTest, NoSpaceForManifestCommitsNothing) {
  ScratchDir dir;
  FaultyFileSystem fs;
  ASSERT_TRUE(SaveWorld(fs, dir.path(), 2, 2, 1).ok());
  fs.fail_path_substring = "MANIFEST";
  fs.space_left = 0;
  EXPECT_TRUE(absl::IsResourceExhausted(SaveWorld(fs, dir.path(), 2, 2, 2)));
  EXPECT_FALSE(stdfs::exists(dir.path() + "/step-00000002"));
  EXPECT_EQ(LoadWorld(fs, dir.path(), 1, 1).result.step, 1);
}

TEST(FullDiskOneRankTest, OneRankOutOfSpaceFailsEveryRank) {
  ScratchDir dir;
  FaultyFileSystem fs;
  fs.fail_path_substring = "shard-00003.bin";
  fs.space_left = 100;
  absl::Status full = SaveWorld(fs, dir.path(), 2, 2, 1);
  EXPECT_TRUE(absl::IsResourceExhausted(full)) << full;
  EXPECT_THAT(std::string(full.message()), HasSubstr("rank 3"));
  EXPECT_TRUE(absl::IsNotFound(LoadWorld(fs, dir.path(), 1, 1).status));
}

}  // namespace
}  // namespace sublet::checkpoint::testing
