#include "worker/train/layer_norm.h"

#include <cmath>

#include "gtest/gtest.h"
#include "tests/train/gradient_check.h"

namespace sublet::train {
namespace {

using testing::ExpectGradientMatches;
using testing::Project;
using testing::RandomTensor;

TEST(LayerNormTest, ForwardNormalisesEachRowToZeroMeanUnitVariance) {
  Tensor x = RandomTensor({3, 8}, 1, 4.0f);
  Tensor gamma{{8}, std::vector<float>(8, 1.0f)}, beta = Tensor::Zeros({8});
  Tensor y;
  LayerNormCache cache;
  ASSERT_TRUE(LayerNormForward(x, gamma, beta, &y, &cache).ok());
  for (int64_t r = 0; r < 3; ++r) {
    double sum = 0.0, sq = 0.0;
    for (int64_t i = 0; i < 8; ++i) sum += y.data[r * 8 + i];
    for (int64_t i = 0; i < 8; ++i) sq += y.data[r * 8 + i] * y.data[r * 8 + i];
    EXPECT_NEAR(sum / 8, 0.0, 1e-5);
    EXPECT_NEAR(sq / 8, 1.0, 1e-3);  // eps = 1e-5 in the variance
  }
}

TEST(LayerNormTest, BackwardMatchesFiniteDifferences) {
  Tensor x = RandomTensor({3, 6}, 2), gamma = RandomTensor({6}, 3);
  Tensor beta = RandomTensor({6}, 4), r = RandomTensor({3, 6}, 5);
  auto loss = [&] {
    Tensor y;
    LayerNormCache cache;
    EXPECT_TRUE(LayerNormForward(x, gamma, beta, &y, &cache).ok());
    return Project(y, r);
  };
  Tensor y, dx, dgamma = Tensor::Zeros({6}), dbeta = Tensor::Zeros({6});
  LayerNormCache cache;
  ASSERT_TRUE(LayerNormForward(x, gamma, beta, &y, &cache).ok());
  ASSERT_TRUE(
      LayerNormBackward(x, gamma, cache, r, &dx, &dgamma, &dbeta).ok());
  ExpectGradientMatches("x", &x, dx, loss);
  ExpectGradientMatches("gamma", &gamma, dgamma, loss);
  ExpectGradientMatches("beta", &beta, dbeta, loss);
}

TEST(LayerNormTest, ForwardRejectsGammaOfWrongWidth) {
  Tensor y;
  LayerNormCache cache;
  EXPECT_EQ(LayerNormForward(Tensor::Zeros({2, 4}), Tensor::Zeros({3}),
                             Tensor::Zeros({4}), &y, &cache)
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LayerNormTest, ForwardRejectsRowsWithoutFeatures) {
  Tensor y;
  LayerNormCache cache;
  EXPECT_EQ(LayerNormForward(Tensor::Zeros({2, 0}), Tensor::Zeros({0}),
                             Tensor::Zeros({0}), &y, &cache)
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LayerNormTest, BackwardRejectsCacheFromAnotherBatch) {
  Tensor x = Tensor::Zeros({2, 4}), gamma = Tensor::Zeros({4});
  LayerNormCache cache{Tensor::Zeros({3}), Tensor::Zeros({3})};
  Tensor dx, dgamma = Tensor::Zeros({4}), dbeta = Tensor::Zeros({4});
  EXPECT_EQ(LayerNormBackward(x, gamma, cache, Tensor::Zeros({2, 4}), &dx,
                              &dgamma, &dbeta)
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sublet::train
