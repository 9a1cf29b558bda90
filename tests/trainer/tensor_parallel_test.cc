// Tensor parallelism against the unsplit model: ranks are threads with
// host-backend communicators; every rank's gradient shard must equal the
// matching shard of the one-rank gradient.
#include "worker/train/tensor_parallel.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/collectives/rank_threads.h"
#include "worker/train/gpt.h"

namespace sublet::train {
namespace {

using collectives::Communicator;
using collectives::testing::Layout;
using collectives::testing::RunRanks;
using collectives::testing::TestOptions;

GptConfig Config() {
  GptConfig c;
  c.vocab = 13;
  c.max_seq = 6;
  c.width = 16;
  c.heads = 4;
  c.layers = 2;
  return c;
}

struct RankRun {
  double loss = 0;
  GptParams params;
};

// One forward and backward of a 2 x 6 batch; replicated gradients summed
// over the tensor group as the trainer does.
RankRun ForwardBackward(int tp, int rank, Communicator* comm) {
  RankRun out;
  out.params = *InitGptParams(Config(), tp, rank, 21);
  TensorParallel group(comm, /*chunks=*/2);
  GptModel model(&out.params, &group);
  std::vector<int32_t> tokens(12), targets(12);
  for (int i = 0; i < 12; ++i) {
    tokens[i] = (i * 5 + 1) % 13;
    targets[i] = (i * 7 + 2) % 13;
  }
  auto loss = model.Forward({tokens, targets, 2, 6});
  EXPECT_TRUE(loss.ok()) << loss.status();
  out.loss = *loss;
  EXPECT_TRUE(model.Backward(1.0f / 12).ok());
  for (Param& p : out.params.params) {
    if (p.split_dim < 0) {
      EXPECT_TRUE(group.AllReduceSum(p.grad.data.data(), p.grad.size()).ok());
    }
  }
  return out;
}

class TensorParallelModel : public ::testing::TestWithParam<int> {};

TEST_P(TensorParallelModel, GradientShardsMatchTheUnsplitModel) {
  const int tp = GetParam();
  const RankRun whole = ForwardBackward(1, 0, nullptr);
  std::vector<RankRun> runs(tp);
  std::vector<double> losses(tp);
  RunRanks(tp, Layout::kOneNode, TestOptions(), [&](Communicator& c) {
    runs[c.rank()] = ForwardBackward(tp, c.rank(), &c);
  });
  double loss = 0;
  for (const RankRun& r : runs) loss += r.loss;
  EXPECT_NEAR(loss, whole.loss, 1e-5 * std::abs(whole.loss));
  for (int t = 0; t < tp; ++t) {
    for (size_t i = 0; i < whole.params.params.size(); ++i) {
      const Param& p = whole.params.params[i];
      const std::vector<float> want = ShardOf(p.grad.data, p.global_shape, p.split_dim, tp, t);
      const std::vector<float>& got = runs[t].params.params[i].grad.data;
      ASSERT_EQ(got.size(), want.size()) << p.name;
      for (size_t j = 0; j < want.size(); ++j) {
        ASSERT_NEAR(got[j], want[j], 1e-6 + 1e-4 * std::abs(want[j])) << p.name << "[" << j << "]";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, TensorParallelModel, ::testing::Values(2, 4));

TEST(Transposed, SwapsRowsAndColumns) {
  Tensor m{{2, 3}, {1, 2, 3, 4, 5, 6}};
  Tensor t = Transposed(m);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(t.data, (std::vector<float>{1, 4, 2, 5, 3, 6}));
}

}  // namespace
}  // namespace sublet::train
