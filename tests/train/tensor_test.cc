#include "worker/train/tensor.h"

#include "gtest/gtest.h"

namespace sublet::train {
namespace {

TEST(TensorTest, ZerosHasShapeAndZeroedData) {
  Tensor t = Tensor::Zeros({2, 3});
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.data, std::vector<float>(6, 0.0f));
}

TEST(TensorTest, ExpectShapeAcceptsMatchingTensor) {
  EXPECT_TRUE(ExpectShape(Tensor::Zeros({2, 3}), {2, 3}, "t").ok());
}

TEST(TensorTest, ExpectShapeRejectsOtherShape) {
  absl::Status s = ExpectShape(Tensor::Zeros({3, 2}), {2, 3}, "t");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("[3,2]"), std::string::npos) << s;
}

TEST(TensorTest, ExpectShapeRejectsBufferNotMatchingShape) {
  Tensor t{{2, 3}, std::vector<float>(5)};
  EXPECT_EQ(ExpectShape(t, {2, 3}, "t").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ExpectMatrix(t, "t").code(), absl::StatusCode::kInvalidArgument);
}

TEST(TensorTest, ExpectMatrixRejectsOtherRanks) {
  EXPECT_EQ(ExpectMatrix(Tensor::Zeros({6}), "t").code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sublet::train
