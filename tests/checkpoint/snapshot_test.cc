// The snapshot copy: every byte lands, whatever the sizes and alignments,
// including the streamed path for large chunks.
#include <gtest/gtest.h>

#include <cstring>
#include <tuple>
#include <vector>

#include "checkpoint/internal/snapshot.h"

namespace sublet::checkpoint::internal {
namespace {

std::vector<std::byte> Noise(uint64_t size, uint64_t seed) {
  std::vector<std::byte> bytes(size);
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (std::byte& b : bytes) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    b = static_cast<std::byte>(x);
  }
  return bytes;
}

// (size, source offset, destination offset)
class StreamCopyTest : public ::testing::TestWithParam<std::tuple<uint64_t, int, int>> {};

TEST_P(StreamCopyTest, CopiesEveryByteAndNothingElse) {
  const auto [size, src_off, dst_off] = GetParam();
  const std::vector<std::byte> src = Noise(size + src_off, size);
  std::vector<std::byte> dst(size + dst_off + 64, std::byte{0x5a});
  StreamCopy(dst.data() + dst_off, src.data() + src_off, size);
  EXPECT_EQ(std::memcmp(dst.data() + dst_off, src.data() + src_off, size), 0);
  for (int i = 0; i < dst_off; ++i) ASSERT_EQ(dst[i], std::byte{0x5a});
  for (uint64_t i = size + dst_off; i < dst.size(); ++i) ASSERT_EQ(dst[i], std::byte{0x5a});
}

INSTANTIATE_TEST_SUITE_P(SizesAndAlignments, StreamCopyTest,
                         ::testing::Combine(::testing::Values(0, 1, 4095, (256 << 10) + 13,
                                                              (1 << 20) + 100),
                                            ::testing::Values(0, 3), ::testing::Values(0, 7, 40)));

TEST(ParallelCopyTest, CopiesManyJobsAcrossChunkBoundaries) {
  std::vector<std::vector<std::byte>> src, dst;
  std::vector<CopyJob> jobs;
  for (uint64_t size : {uint64_t{0}, uint64_t{100}, uint64_t{(9 << 20) + 5}, uint64_t{4 << 20}}) {
    src.push_back(Noise(size, size + 1));
    dst.emplace_back(size);
  }
  for (size_t i = 0; i < src.size(); ++i) jobs.push_back({dst[i].data(), src[i].data(), src[i].size()});
  ParallelCopy(jobs);
  EXPECT_EQ(dst, src);
}

TEST(AllocateStagingTest, LargeBuffersAreHugePageAlignedSmallOnesPageAligned) {
  StagingBuffer large = AllocateStaging(3 << 20);
  StagingBuffer small = AllocateStaging(100);
  StagingBuffer empty = AllocateStaging(0);
  ASSERT_NE(large, nullptr);
  ASSERT_NE(small, nullptr);
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(large.get()) % (2 << 20), 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.get()) % 4096, 0u);
}

}  // namespace
}  // namespace sublet::checkpoint::internal
