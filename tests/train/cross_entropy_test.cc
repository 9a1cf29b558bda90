#include "worker/train/cross_entropy.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "tests/train/gradient_check.h"

namespace sublet::train {
namespace {

using testing::ExpectGradientMatches;
using testing::RandomTensor;

TEST(CrossEntropyTest, UniformLogitsGiveLogVocab) {
  Tensor logits = Tensor::Zeros({2, 8}), probs;
  const std::vector<int32_t> targets = {3, 7};
  double loss = 0.0;
  ASSERT_TRUE(CrossEntropyForward(logits, targets, &loss, &probs).ok());
  EXPECT_NEAR(loss, std::log(8.0), 1e-6);
}

TEST(CrossEntropyTest, LargeLogitsDoNotOverflow) {
  Tensor logits{{1, 3}, {1000.0f, 0.0f, -1000.0f}}, probs;
  const std::vector<int32_t> targets = {1};
  double loss = 0.0;
  ASSERT_TRUE(CrossEntropyForward(logits, targets, &loss, &probs).ok());
  EXPECT_NEAR(loss, 1000.0, 1e-3);
  EXPECT_FLOAT_EQ(probs.data[0], 1.0f);
}

TEST(CrossEntropyTest, BackwardMatchesFiniteDifferences) {
  Tensor logits = RandomTensor({4, 6}, 1, 2.0f);
  const std::vector<int32_t> targets = {0, 5, 2, 2};
  auto loss = [&] {
    Tensor probs;
    double l = 0.0;
    EXPECT_TRUE(CrossEntropyForward(logits, targets, &l, &probs).ok());
    return l;
  };
  Tensor probs, dlogits;
  double l = 0.0;
  ASSERT_TRUE(CrossEntropyForward(logits, targets, &l, &probs).ok());
  ASSERT_TRUE(CrossEntropyBackward(probs, targets, &dlogits).ok());
  ExpectGradientMatches("logits", &logits, dlogits, loss);
}

TEST(CrossEntropyTest, ForwardRejectsTargetOutsideVocab) {
  Tensor probs;
  double loss = 0.0;
  const std::vector<int32_t> targets = {0, 6};
  EXPECT_EQ(CrossEntropyForward(Tensor::Zeros({2, 6}), targets, &loss, &probs)
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CrossEntropyTest, ForwardRejectsTargetCountNotMatchingRows) {
  Tensor probs;
  double loss = 0.0;
  const std::vector<int32_t> targets = {0};
  EXPECT_EQ(CrossEntropyForward(Tensor::Zeros({2, 6}), targets, &loss, &probs)
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CrossEntropyTest, BackwardRejectsProbabilitiesOfRankOne) {
  Tensor dlogits;
  const std::vector<int32_t> targets = {0};
  EXPECT_EQ(CrossEntropyBackward(Tensor::Zeros({6}), targets, &dlogits).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sublet::train
