#include "worker/train/embedding.h"

#include <vector>

#include "gtest/gtest.h"
#include "tests/train/gradient_check.h"

namespace sublet::train {
namespace {

using testing::ExpectGradientMatches;
using testing::Project;
using testing::RandomTensor;

constexpr int64_t kVocab = 5, kWidth = 3, kMaxSeq = 4, kSeq = 3;
// Two sequences; token 2 repeats so its gradient rows must add up.
const std::vector<int32_t> kTokens = {2, 0, 2, 4, 1, 2};

TEST(EmbeddingTest, ForwardAddsTokenAndPositionRows) {
  Tensor wte = RandomTensor({kVocab, kWidth}, 1);
  Tensor wpe = RandomTensor({kMaxSeq, kWidth}, 2), y;
  ASSERT_TRUE(EmbeddingForward(kTokens, kSeq, wte, wpe, &y).ok());
  ASSERT_EQ(y.shape, (std::vector<int64_t>{6, kWidth}));
  // Row 4 is token 1 at position 1 of the second sequence.
  for (int64_t c = 0; c < kWidth; ++c) {
    EXPECT_EQ(y.data[4 * kWidth + c],
              wte.data[1 * kWidth + c] + wpe.data[1 * kWidth + c]);
  }
}

TEST(EmbeddingTest, BackwardMatchesFiniteDifferences) {
  Tensor wte = RandomTensor({kVocab, kWidth}, 3);
  Tensor wpe = RandomTensor({kMaxSeq, kWidth}, 4), r = RandomTensor({6, kWidth}, 5);
  auto loss = [&] {
    Tensor y;
    EXPECT_TRUE(EmbeddingForward(kTokens, kSeq, wte, wpe, &y).ok());
    return Project(y, r);
  };
  Tensor dwte = Tensor::Zeros({kVocab, kWidth});
  Tensor dwpe = Tensor::Zeros({kMaxSeq, kWidth});
  ASSERT_TRUE(EmbeddingBackward(kTokens, kSeq, r, &dwte, &dwpe).ok());
  ExpectGradientMatches("wte", &wte, dwte, loss);
  ExpectGradientMatches("wpe", &wpe, dwpe, loss);
}

TEST(EmbeddingTest, TiedHeadBackwardMatchesFiniteDifferences) {
  Tensor x = RandomTensor({4, kWidth}, 6), wte = RandomTensor({kVocab, kWidth}, 7);
  Tensor r = RandomTensor({4, kVocab}, 8);
  auto loss = [&] {
    Tensor logits;
    EXPECT_TRUE(TiedHeadForward(x, wte, &logits).ok());
    return Project(logits, r);
  };
  Tensor dx, dwte = Tensor::Zeros({kVocab, kWidth});
  ASSERT_TRUE(TiedHeadBackward(x, wte, r, &dx, &dwte).ok());
  ExpectGradientMatches("x", &x, dx, loss);
  ExpectGradientMatches("wte", &wte, dwte, loss);
}

TEST(EmbeddingTest, TiedTableGradientSumsEmbeddingAndHead) {
  // The same table feeds the embedding and the head: L = sum(emb * r1) +
  // sum(head(x) * r2), and both backward passes accumulate into one dwte.
  Tensor wte = RandomTensor({kVocab, kWidth}, 9);
  Tensor wpe = RandomTensor({kMaxSeq, kWidth}, 10), x = RandomTensor({6, kWidth}, 11);
  Tensor r1 = RandomTensor({6, kWidth}, 12), r2 = RandomTensor({6, kVocab}, 13);
  auto loss = [&] {
    Tensor y, logits;
    EXPECT_TRUE(EmbeddingForward(kTokens, kSeq, wte, wpe, &y).ok());
    EXPECT_TRUE(TiedHeadForward(x, wte, &logits).ok());
    return Project(y, r1) + Project(logits, r2);
  };
  Tensor dx, dwte = Tensor::Zeros({kVocab, kWidth});
  Tensor dwpe = Tensor::Zeros({kMaxSeq, kWidth});
  ASSERT_TRUE(EmbeddingBackward(kTokens, kSeq, r1, &dwte, &dwpe).ok());
  ASSERT_TRUE(TiedHeadBackward(x, wte, r2, &dx, &dwte).ok());
  ExpectGradientMatches("wte", &wte, dwte, loss);
}

TEST(EmbeddingTest, ForwardRejectsTokenOutsideVocab) {
  Tensor wte = Tensor::Zeros({kVocab, kWidth}), wpe = Tensor::Zeros({kMaxSeq, kWidth}), y;
  const std::vector<int32_t> tokens = {0, 5, 1};
  EXPECT_EQ(EmbeddingForward(tokens, kSeq, wte, wpe, &y).code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<int32_t> negative = {0, -1, 1};
  EXPECT_EQ(EmbeddingForward(negative, kSeq, wte, wpe, &y).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EmbeddingTest, ForwardRejectsSequenceLongerThanPositionTable) {
  Tensor wte = Tensor::Zeros({kVocab, kWidth}), wpe = Tensor::Zeros({kMaxSeq, kWidth}), y;
  const std::vector<int32_t> tokens(kMaxSeq + 1, 0);
  EXPECT_EQ(EmbeddingForward(tokens, kMaxSeq + 1, wte, wpe, &y).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EmbeddingTest, ForwardRejectsPartialSequence) {
  Tensor wte = Tensor::Zeros({kVocab, kWidth}), wpe = Tensor::Zeros({kMaxSeq, kWidth}), y;
  const std::vector<int32_t> tokens = {0, 1, 2, 3};
  EXPECT_EQ(EmbeddingForward(tokens, kSeq, wte, wpe, &y).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EmbeddingTest, TiedHeadRejectsTableOfOtherWidth) {
  Tensor logits;
  EXPECT_EQ(TiedHeadForward(Tensor::Zeros({2, kWidth}),
                            Tensor::Zeros({kVocab, kWidth + 1}), &logits)
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sublet::train
