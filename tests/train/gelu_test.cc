#include "worker/train/gelu.h"

#include "gtest/gtest.h"
#include "tests/train/gradient_check.h"

namespace sublet::train {
namespace {

using testing::ExpectGradientMatches;
using testing::Project;
using testing::RandomTensor;

TEST(GeluTest, ForwardMatchesKnownValues) {
  Tensor x{{3}, {-1.0f, 0.0f, 1.0f}};
  Tensor y;
  ASSERT_TRUE(GeluForward(x, &y).ok());
  // 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) at x = +-1.
  EXPECT_NEAR(y.data[0], -0.158808f, 1e-5);
  EXPECT_EQ(y.data[1], 0.0f);
  EXPECT_NEAR(y.data[2], 0.841192f, 1e-5);
}

TEST(GeluTest, BackwardMatchesFiniteDifferences) {
  Tensor x = RandomTensor({4, 5}, 1, 3.0f), r = RandomTensor({4, 5}, 2);
  auto loss = [&] {
    Tensor y;
    EXPECT_TRUE(GeluForward(x, &y).ok());
    return Project(y, r);
  };
  Tensor dx;
  ASSERT_TRUE(GeluBackward(x, r, &dx).ok());
  ExpectGradientMatches("x", &x, dx, loss);
}

TEST(GeluTest, BackwardRejectsGradientOfOtherShape) {
  Tensor dx;
  EXPECT_EQ(GeluBackward(Tensor::Zeros({2, 3}), Tensor::Zeros({3, 2}), &dx)
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(GeluTest, ForwardRejectsMalformedTensor) {
  Tensor y;
  EXPECT_EQ(GeluForward(Tensor{{2, 3}, std::vector<float>(4)}, &y).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sublet::train
