// MANIFEST and COMMIT parsing: round trips, and hostile bytes rejected as
// DataLoss without crashing or allocating what the input claims.
#include "checkpoint/manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "checkpoint/internal/bytes.h"

namespace sublet::checkpoint {
namespace {

using ::testing::HasSubstr;

Manifest SmallManifest() {
  Manifest m;
  m.dp = 1;
  m.tp = 2;
  m.block_size = 4096;
  m.cursor = {12, 384, "rng"};
  m.tensors = {{"w", DType::kF32, {4, 2048}, 0}, {"b", DType::kF32, {3}, -1}};
  m.files = {{"shard-00000.bin", 16384 + 12}, {"shard-00001.bin", 16384}};
  m.pieces = {{0, 0, 0, 0, 0, 16384, {1, 2, 3, 4}},
              {1, 0, 0, 0, 16384, 12, {5}},
              {0, 1, 0, 1, 0, 16384, {6, 7, 8, 9}}};
  return m;
}

TEST(ManifestTest, RoundTrips) {
  const Manifest m = SmallManifest();
  absl::StatusOr<Manifest> parsed = ParseManifest(EncodeManifest(m));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->tp, 2);
  EXPECT_EQ(parsed->cursor.rng_state, "rng");
  EXPECT_EQ(parsed->tensors, m.tensors);
  EXPECT_EQ(parsed->pieces[2].checksums, m.pieces[2].checksums);
  EXPECT_EQ(EncodeManifest(*parsed), EncodeManifest(m));
}

TEST(ManifestTest, RoundTripsTheRun) {
  Manifest m = SmallManifest();
  m.run = {"lineage-1", "steps=400 seq_len=32"};
  absl::StatusOr<Manifest> parsed = ParseManifest(EncodeManifest(m));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->run, m.run);
}

// Format 1 (before the run was recorded) still loads, with an empty run.
TEST(ManifestTest, AFormatOneManifestLoadsWithAnEmptyRun) {
  std::string bytes = EncodeManifest(SmallManifest());
  const size_t version_at = bytes.find('\x02');  // after the magic: the version, little-endian
  ASSERT_NE(version_at, std::string::npos);
  bytes[version_at] = '\x01';
  const size_t run_at = bytes.find("rng") + 3;  // the run's two empty strings follow the cursor
  ASSERT_EQ(bytes.substr(run_at, 16), std::string(16, '\0'));
  bytes.erase(run_at, 16);
  absl::StatusOr<Manifest> parsed = ParseManifest(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->run, RunInfo{});
  EXPECT_EQ(parsed->tensors, SmallManifest().tensors);
}

TEST(ManifestTest, EveryTruncationIsDataLoss) {
  const std::string bytes = EncodeManifest(SmallManifest());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_TRUE(absl::IsDataLoss(ParseManifest(bytes.substr(0, n)).status())) << n;
  }
}

TEST(ManifestTest, TrailingBytesAreDataLoss) {
  EXPECT_TRUE(absl::IsDataLoss(ParseManifest(EncodeManifest(SmallManifest()) + "x").status()));
}

TEST(ManifestTest, RejectsPiecesThatDoNotTileTheShard) {
  Manifest m = SmallManifest();
  m.pieces[0].length = 8192;
  m.pieces[0].checksums = {1, 2};
  EXPECT_THAT(std::string(ParseManifest(EncodeManifest(m)).status().message()),
              HasSubstr("do not cover it exactly"));
}

TEST(ManifestTest, RejectsDuplicatePieces) {
  Manifest m = SmallManifest();
  m.pieces.push_back(m.pieces[1]);
  EXPECT_TRUE(absl::IsDataLoss(ParseManifest(EncodeManifest(m)).status()));
}

TEST(ManifestTest, RejectsPieceBeyondItsFile) {
  Manifest m = SmallManifest();
  m.files[1].size = 100;
  EXPECT_THAT(std::string(ParseManifest(EncodeManifest(m)).status().message()),
              HasSubstr("runs past the file's end"));
}

TEST(ManifestTest, RejectsFileNamesThatAreNotShardNames) {
  Manifest m = SmallManifest();
  m.files[1].name = "../../etc/passwd";
  EXPECT_TRUE(absl::IsDataLoss(ParseManifest(EncodeManifest(m)).status()));
}

TEST(ManifestTest, RejectsBadSplitAndShape) {
  Manifest m = SmallManifest();
  m.tensors[1].split_dim = 1;
  EXPECT_TRUE(absl::IsDataLoss(ParseManifest(EncodeManifest(m)).status()));
  m = SmallManifest();
  m.tensors[1].shape = {1 << 30, 1 << 30, 1 << 30};
  EXPECT_TRUE(absl::IsDataLoss(ParseManifest(EncodeManifest(m)).status()));
}

TEST(ManifestTest, HugeCountsDoNotAllocate) {
  internal::ByteWriter w;
  w.str() = "SUBLETMF";
  w.U32(1);
  w.U32(1);
  w.U32(1);
  w.U64(4096);
  w.I64(0);
  w.U64(0);
  w.Bytes("");
  w.U64(UINT64_MAX);  // tensors
  EXPECT_THAT(std::string(ParseManifest(w.str()).status().message()), HasSubstr("tensor count"));
}

TEST(CommitTest, RoundTripsAndDetectsAnyFlip) {
  const std::string bytes = EncodeCommit({400, 1234, 0xfeed});
  absl::StatusOr<CommitRecord> c = ParseCommit(bytes);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->step, 400);
  EXPECT_EQ(c->manifest_checksum, 0xfeedu);
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] ^= 1;
    EXPECT_TRUE(absl::IsDataLoss(ParseCommit(bad).status())) << i;
  }
}

TEST(StepDirTest, NamesRoundTripAndOthersAreRejected) {
  int64_t step;
  EXPECT_TRUE(ParseStepDirName(StepDirName(400), &step));
  EXPECT_EQ(step, 400);
  EXPECT_TRUE(ParseStepDirName("step-123456789", &step));
  EXPECT_FALSE(ParseStepDirName("step-0400", &step));
  EXPECT_FALSE(ParseStepDirName(".tmp-step-00000400", &step));
  EXPECT_FALSE(ParseStepDirName("step-0000040x", &step));
}

TEST(ShardingTest, UnevenSplitsCoverTheDimension) {
  TensorSpec t{"t", DType::kF32, {5, 3}, 0};
  EXPECT_EQ(ShardRange(t, 4, 0), (std::pair<int64_t, int64_t>{0, 1}));
  EXPECT_EQ(ShardRange(t, 4, 3), (std::pair<int64_t, int64_t>{3, 5}));
  EXPECT_EQ(LocalBytes(t, 4, 3), 2u * 3 * 4);
  TensorSpec r{"r", DType::kBF16, {7}, -1};
  EXPECT_EQ(LocalBytes(r, 4, 2), 14u);
}

}  // namespace
}  // namespace sublet::checkpoint
