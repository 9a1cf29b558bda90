#include "worker/train/attention.h"

#include "gtest/gtest.h"
#include "tests/train/gradient_check.h"

namespace sublet::train {
namespace {

using testing::ExpectGradientMatches;
using testing::Project;
using testing::RandomTensor;

constexpr AttentionShape kShape{.batch = 2, .seq = 3, .heads = 2};
constexpr int64_t kRows = 6, kWidth = 4;

TEST(AttentionTest, FirstPositionOutputsItsOwnValue) {
  Tensor q = RandomTensor({kRows, kWidth}, 1), k = RandomTensor({kRows, kWidth}, 2);
  Tensor v = RandomTensor({kRows, kWidth}, 3), y, probs;
  ASSERT_TRUE(CausalAttentionForward(kShape, q, k, v, &y, &probs).ok());
  for (int64_t b = 0; b < kShape.batch; ++b) {
    const int64_t row = b * kShape.seq * kWidth;
    for (int64_t c = 0; c < kWidth; ++c) {
      EXPECT_FLOAT_EQ(y.data[row + c], v.data[row + c]);
    }
  }
}

TEST(AttentionTest, EarlierPositionsIgnoreLaterKeysAndValues) {
  Tensor q = RandomTensor({kRows, kWidth}, 1), k = RandomTensor({kRows, kWidth}, 2);
  Tensor v = RandomTensor({kRows, kWidth}, 3), y, probs;
  ASSERT_TRUE(CausalAttentionForward(kShape, q, k, v, &y, &probs).ok());
  const int64_t last = (kShape.seq - 1) * kWidth;  // last position of batch 0
  for (int64_t c = 0; c < kWidth; ++c) {
    k.data[last + c] += 5.0f;
    v.data[last + c] -= 5.0f;
  }
  Tensor y2;
  ASSERT_TRUE(CausalAttentionForward(kShape, q, k, v, &y2, &probs).ok());
  for (int64_t i = 0; i < last; ++i) EXPECT_EQ(y.data[i], y2.data[i]) << i;
  EXPECT_NE(y.data[last], y2.data[last]);
}

TEST(AttentionTest, BackwardMatchesFiniteDifferences) {
  Tensor q = RandomTensor({kRows, kWidth}, 4), k = RandomTensor({kRows, kWidth}, 5);
  Tensor v = RandomTensor({kRows, kWidth}, 6), r = RandomTensor({kRows, kWidth}, 7);
  auto loss = [&] {
    Tensor y, probs;
    EXPECT_TRUE(CausalAttentionForward(kShape, q, k, v, &y, &probs).ok());
    return Project(y, r);
  };
  Tensor y, probs, dq, dk, dv;
  ASSERT_TRUE(CausalAttentionForward(kShape, q, k, v, &y, &probs).ok());
  ASSERT_TRUE(
      CausalAttentionBackward(kShape, q, k, v, probs, r, &dq, &dk, &dv).ok());
  ExpectGradientMatches("q", &q, dq, loss);
  ExpectGradientMatches("k", &k, dk, loss);
  ExpectGradientMatches("v", &v, dv, loss);
}

TEST(AttentionTest, ForwardRejectsWidthNotDivisibleByHeads) {
  Tensor t = Tensor::Zeros({kRows, 5}), y, probs;
  EXPECT_EQ(CausalAttentionForward(kShape, t, t, t, &y, &probs).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AttentionTest, ForwardRejectsRowsNotMatchingBatchTimesSeq) {
  Tensor t = Tensor::Zeros({kRows + 1, kWidth}), y, probs;
  EXPECT_EQ(CausalAttentionForward(kShape, t, t, t, &y, &probs).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AttentionTest, ForwardRejectsKeysOfOtherShape) {
  Tensor q = Tensor::Zeros({kRows, kWidth}), k = Tensor::Zeros({kRows, 2});
  Tensor y, probs;
  EXPECT_EQ(CausalAttentionForward(kShape, q, k, q, &y, &probs).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AttentionTest, ForwardRejectsNonPositiveShape) {
  Tensor t = Tensor::Zeros({0, kWidth}), y, probs;
  AttentionShape empty{.batch = 0, .seq = 3, .heads = 2};
  EXPECT_EQ(CausalAttentionForward(empty, t, t, t, &y, &probs).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AttentionTest, BackwardRejectsProbabilitiesOfOtherShape) {
  Tensor t = Tensor::Zeros({kRows, kWidth}), dq, dk, dv;
  Tensor probs = Tensor::Zeros({2, 2, 3, 2});
  EXPECT_EQ(
      CausalAttentionBackward(kShape, t, t, t, probs, t, &dq, &dk, &dv).code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sublet::train
