#include "worker/train/linear.h"

#include "gtest/gtest.h"
#include "tests/train/gradient_check.h"

namespace sublet::train {
namespace {

using testing::ExpectGradientMatches;
using testing::Project;
using testing::RandomTensor;

TEST(LinearTest, ForwardComputesXTimesWPlusBias) {
  Tensor x{{1, 2}, {1.0f, 2.0f}};
  Tensor w{{2, 3}, {1, 2, 3, 4, 5, 6}};
  Tensor b{{3}, {0.5f, 0.0f, -1.0f}};
  Tensor y;
  ASSERT_TRUE(LinearForward(x, w, b, &y).ok());
  EXPECT_EQ(y.shape, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(y.data, (std::vector<float>{9.5f, 12.0f, 14.0f}));
}

TEST(LinearTest, BackwardMatchesFiniteDifferences) {
  Tensor x = RandomTensor({4, 5}, 1), w = RandomTensor({5, 3}, 2);
  Tensor b = RandomTensor({3}, 3), r = RandomTensor({4, 3}, 4);
  auto loss = [&] {
    Tensor y;
    EXPECT_TRUE(LinearForward(x, w, b, &y).ok());
    return Project(y, r);
  };
  Tensor dx, dw = Tensor::Zeros({5, 3}), db = Tensor::Zeros({3});
  ASSERT_TRUE(LinearBackward(x, w, r, &dx, &dw, &db).ok());
  ExpectGradientMatches("x", &x, dx, loss);
  ExpectGradientMatches("w", &w, dw, loss);
  ExpectGradientMatches("b", &b, db, loss);
}

TEST(LinearTest, BackwardAccumulatesParameterGradients) {
  Tensor x = RandomTensor({2, 3}, 5), w = RandomTensor({3, 2}, 6);
  Tensor dy = RandomTensor({2, 2}, 7);
  Tensor dx, dw = Tensor::Zeros({3, 2}), db = Tensor::Zeros({2});
  ASSERT_TRUE(LinearBackward(x, w, dy, &dx, &dw, &db).ok());
  Tensor dw_once = dw, db_once = db;
  ASSERT_TRUE(LinearBackward(x, w, dy, &dx, &dw, &db).ok());
  for (int64_t i = 0; i < dw.size(); ++i) {
    EXPECT_FLOAT_EQ(dw.data[i], 2.0f * dw_once.data[i]);
  }
  for (int64_t i = 0; i < db.size(); ++i) {
    EXPECT_FLOAT_EQ(db.data[i], 2.0f * db_once.data[i]);
  }
}

TEST(LinearTest, ForwardRejectsWeightNotMatchingInputWidth) {
  Tensor y;
  EXPECT_EQ(LinearForward(Tensor::Zeros({2, 4}), Tensor::Zeros({3, 2}),
                          Tensor::Zeros({2}), &y)
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LinearTest, ForwardRejectsBiasOfWrongWidth) {
  Tensor y;
  EXPECT_EQ(LinearForward(Tensor::Zeros({2, 3}), Tensor::Zeros({3, 2}),
                          Tensor::Zeros({3}), &y)
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LinearTest, BackwardRejectsGradientBuffersOfWrongShape) {
  Tensor x = Tensor::Zeros({2, 3}), w = Tensor::Zeros({3, 2});
  Tensor dy = Tensor::Zeros({2, 2}), dx;
  Tensor dw = Tensor::Zeros({2, 3}), db = Tensor::Zeros({2});
  EXPECT_EQ(LinearBackward(x, w, dy, &dx, &dw, &db).code(),
            absl::StatusCode::kInvalidArgument);
  dw = Tensor::Zeros({3, 2});
  Tensor bad_dy = Tensor::Zeros({3, 2});
  EXPECT_EQ(LinearBackward(x, w, bad_dy, &dx, &dw, &db).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sublet::train
