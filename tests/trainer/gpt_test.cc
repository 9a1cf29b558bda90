// The assembled model: its backward against finite differences of its
// forward, on a model small enough to nudge every parameter.
#include "worker/train/gpt.h"

#include <gtest/gtest.h>

#include "tests/train/gradient_check.h"

namespace sublet::train {
namespace {

using testing::ExpectGradientMatches;

GptConfig Micro() {
  GptConfig c;
  c.vocab = 11;
  c.max_seq = 4;
  c.width = 8;
  c.heads = 2;
  c.layers = 2;
  return c;
}

struct Batch {
  std::vector<int32_t> tokens = {1, 5, 2, 9, 3, 3, 10, 0};
  std::vector<int32_t> targets = {5, 2, 9, 4, 3, 10, 0, 7};
  MicroBatch View() const { return {tokens, targets, 2, 4}; }
};

// Larger weights than the 0.02 initialisation, so every path (attention
// scores included) has gradients well above the rounding noise.
void Scramble(GptParams* params) {
  uint32_t seed = 7;
  for (Param& p : params->params) {
    const Tensor r = testing::RandomTensor(p.value.shape, ++seed, 0.5f);
    for (int64_t i = 0; i < p.value.size(); ++i) p.value.data[i] += r.data[i];
  }
}

TEST(GptModel, BackwardMatchesFiniteDifferencesForEveryParameter) {
  auto params = InitGptParams(Micro(), 1, 0, 3);
  ASSERT_TRUE(params.ok()) << params.status();
  Scramble(&*params);
  TensorParallel tp(nullptr);
  GptModel model(&*params, &tp);
  Batch batch;
  const float scale = 1.0f / 8;
  ASSERT_TRUE(model.Forward(batch.View()).ok());
  std::vector<size_t> ready;
  ASSERT_TRUE(model.Backward(scale, [&](size_t i) {
                     ready.push_back(i);
                     return absl::OkStatus();
                   }).ok());
  EXPECT_EQ(ready, params->BackwardOrder());
  auto loss = [&] { return *model.Forward(batch.View()) * scale; };
  for (Param& p : params->params) {
    ExpectGradientMatches(p.name, &p.value, p.grad, loss);
  }
}

TEST(GptModel, InitialLossIsNearUniformOverTheVocabulary) {
  auto params = InitGptParams(Micro(), 1, 0, 3);
  ASSERT_TRUE(params.ok());
  TensorParallel tp(nullptr);
  GptModel model(&*params, &tp);
  Batch batch;
  auto sum = model.Forward(batch.View());
  ASSERT_TRUE(sum.ok());
  EXPECT_NEAR(*sum / 8, std::log(11.0), 0.05);
}

TEST(GptModel, RejectsSequencesLongerThanMaxSeq) {
  auto params = InitGptParams(Micro(), 1, 0, 3);
  TensorParallel tp(nullptr);
  GptModel model(&*params, &tp);
  std::vector<int32_t> tokens(10, 1);
  auto r = model.Forward({tokens, tokens, 2, 5});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GptModel, BackwardBeforeForwardIsFailedPrecondition) {
  auto params = InitGptParams(Micro(), 1, 0, 3);
  TensorParallel tp(nullptr);
  GptModel model(&*params, &tp);
  EXPECT_EQ(model.Backward(1.0f).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(GptParams, PresetsHaveTheDocumentedSizes) {
  auto tiny = InitGptParams(*GptPreset("tiny"), 1, 0, 1);
  auto small = InitGptParams(*GptPreset("small"), 1, 0, 1);
  ASSERT_TRUE(tiny.ok() && small.ok());
  EXPECT_LT(tiny->GlobalCount(), 100'000);
  EXPECT_GT(small->GlobalCount(), 2'000'000);
  EXPECT_LT(small->GlobalCount(), 10'000'000);
  // medium: at least 1 GiB of value + AdamW moments (the benches' state).
  auto medium = InitGptParams(*GptPreset("medium"), 2, 1, 1);
  ASSERT_TRUE(medium.ok());
  EXPECT_EQ(medium->GlobalCount(), 101'165'056);
  EXPECT_GE(3 * 4 * medium->GlobalCount(), int64_t{1} << 30);
  EXPECT_EQ(GptPreset("huge").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GptParams, ShardsOfATensorParallelGroupTileTheWholeModel) {
  auto whole = InitGptParams(Micro(), 1, 0, 9);
  ASSERT_TRUE(whole.ok());
  for (int t = 0; t < 2; ++t) {
    auto part = InitGptParams(Micro(), 2, t, 9);
    ASSERT_TRUE(part.ok());
    for (size_t i = 0; i < part->params.size(); ++i) {
      const Param& p = whole->params[i];
      EXPECT_EQ(part->params[i].value.data, ShardOf(p.value.data, p.global_shape, p.split_dim, 2, t))
          << p.name;
    }
  }
}

TEST(GptParams, TensorParallelMustDivideHeads) {
  EXPECT_EQ(InitGptParams(Micro(), 3, 0, 1).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sublet::train
