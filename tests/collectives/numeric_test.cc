// Element arithmetic shared with the CUDA kernels, and the chunking rule.
#include "collectives/internal/numeric.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "collectives/internal/reduce.h"

namespace sublet::collectives {
namespace {

TEST(Numeric, Bf16RoundsToNearestEven) {
  EXPECT_EQ(FloatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(3.140625f)), 3.140625f);
  EXPECT_EQ(FloatToBf16(BitsFloat(0x3f808000u)), 0x3f80);  // tie -> even
  EXPECT_EQ(FloatToBf16(BitsFloat(0x3f818000u)), 0x3f82);  // tie -> even (up)
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(Numeric, F16RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    uint16_t bits = static_cast<uint16_t>(h);
    float f = F16ToFloat(bits);
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToF16(f), bits) << std::hex << h;
  }
}

TEST(Numeric, F16RoundsOverflowAndSubnormals) {
  EXPECT_EQ(FloatToF16(65520.0f), 0x7c00);      // rounds up to infinity
  EXPECT_EQ(FloatToF16(65504.0f), 0x7bff);      // largest finite
  EXPECT_EQ(FloatToF16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(FloatToF16(std::ldexp(1.0f, -26)), 0x0000);  // below half the smallest: zero
  EXPECT_EQ(FloatToF16(-2.0f), 0xc000);
}

TEST(Numeric, ChunksCoverEverythingAlignedAndInOrder) {
  for (size_t total : {0, 1, 15, 16, 17, 1000, 4099}) {
    for (size_t parts : {1, 2, 3, 4, 7}) {
      size_t next = 0;
      for (size_t i = 0; i < parts; ++i) {
        Range r = ChunkOf(total, parts, i, 16);
        EXPECT_EQ(r.begin, next);
        if (r.end < total) {
          EXPECT_EQ(r.end % 16, 0u);
        }
        next = r.end;
      }
      EXPECT_EQ(next, total);
    }
  }
}

TEST(Reduce, AverageOfIntegersTruncates) {
  std::vector<int32_t> v = {7, -7, 9};
  internal::ScaleForAverage(v.data(), v.size(), DataType::kI32, 2);
  EXPECT_EQ(v, (std::vector<int32_t>{3, -3, 4}));
}

TEST(Reduce, MaxAndMinOfBf16) {
  std::vector<uint16_t> a = {FloatToBf16(1), FloatToBf16(-5)};
  std::vector<uint16_t> b = {FloatToBf16(2), FloatToBf16(-6)};
  std::vector<uint16_t> out(2);
  internal::ReduceTo(out.data(), a.data(), b.data(), 2, DataType::kBF16, ReduceOp::kMax);
  EXPECT_EQ(Bf16ToFloat(out[0]), 2.0f);
  EXPECT_EQ(Bf16ToFloat(out[1]), -5.0f);
  internal::ReduceTo(out.data(), a.data(), b.data(), 2, DataType::kBF16, ReduceOp::kMin);
  EXPECT_EQ(Bf16ToFloat(out[1]), -6.0f);
}

}  // namespace
}  // namespace sublet::collectives
