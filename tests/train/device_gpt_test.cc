// The CUDA twin of the GPT model. Without a device (this machine, most CI
// runners) it must refuse cleanly; with one, it must follow the host model.
#include "worker/train/cuda/device_gpt.h"

#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/train/gradient_check.h"
#include "worker/train/gpt.h"
#include "worker/train/tensor_parallel.h"

namespace sublet::train::cuda {
namespace {

GptConfig Small() {
  GptConfig c;
  c.vocab = 23;
  c.max_seq = 8;
  c.width = 16;
  c.heads = 4;
  c.layers = 2;
  return c;
}

struct Batch {
  std::vector<int32_t> tokens, targets;
  MicroBatch View() const { return {tokens, targets, 3, 8}; }
};

Batch MakeBatch() {
  Batch b;
  for (int32_t i = 0; i < 24; ++i) {
    b.tokens.push_back((i * 7 + 3) % 23);
    b.targets.push_back((i * 5 + 1) % 23);
  }
  return b;
}

void ExpectClose(const std::string& what, const std::vector<float>& got,
                 const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], 1e-5 + 1e-3 * std::fabs(want[i])) << what << "[" << i << "]";
  }
}

TEST(DeviceGptModel, RefusesWithNoCudaDeviceWhenThereIsNone) {
  if (CudaDeviceCount().ok()) GTEST_SKIP() << "a CUDA device is present; see MatchesTheHostModel";
  const absl::Status count = CudaDeviceCount().status();
  EXPECT_EQ(count.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::string(count.message()).rfind("no CUDA device: ", 0), 0u) << count;
  auto params = InitGptParams(Small(), 1, 0, 1);
  ASSERT_TRUE(params.ok());
  auto model = DeviceGptModel::Create(*params);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::string(model.status().message()).rfind("no CUDA device: ", 0), 0u)
      << model.status();
}

// One forward, backward and AdamW step on both models from the same
// parameters: loss, every gradient and every updated value agree to float
// rounding (cuBLAS and the host BLAS sum in different orders).
TEST(DeviceGptModel, MatchesTheHostModelOnOneDevice) {
  const absl::StatusOr<int> count = CudaDeviceCount();
  if (!count.ok()) GTEST_SKIP() << "needs a CUDA device: " << count.status();
  auto host = InitGptParams(Small(), 1, 0, 5);
  ASSERT_TRUE(host.ok());
  auto device = DeviceGptModel::Create(*host);
  ASSERT_TRUE(device.ok()) << device.status();
  TensorParallel tp(nullptr);
  GptModel model(&*host, &tp);
  const Batch batch = MakeBatch();
  const float scale = 1.0f / 24;

  auto host_loss = model.Forward(batch.View());
  auto device_loss = (*device)->Forward(batch.View());
  ASSERT_TRUE(host_loss.ok() && device_loss.ok()) << device_loss.status();
  EXPECT_NEAR(*device_loss, *host_loss, 1e-5 * *host_loss);
  ASSERT_TRUE(model.Backward(scale).ok());
  ASSERT_TRUE((*device)->Backward(scale).ok());
  GptParams got = *host;
  ASSERT_TRUE((*device)->Download(&got).ok());
  for (size_t i = 0; i < got.params.size(); ++i) {
    ExpectClose(got.params[i].name + ".grad", got.params[i].grad.data, host->params[i].grad.data);
  }

  auto clip = (*device)->Step({}, 1, 1e-3f, 1.0);
  ASSERT_TRUE(clip.ok()) << clip.status();
  double sq = 0;
  for (const Param& p : host->params) {
    for (float g : p.grad.data) sq += static_cast<double>(g) * g;
  }
  EXPECT_NEAR(*clip, ClipFactor(sq, 1.0), 1e-5);
  for (Param& p : host->params) {
    for (float& g : p.grad.data) g *= *clip;
    Tensor m = Tensor::Zeros(p.value.shape), v = Tensor::Zeros(p.value.shape);
    AdamWUpdate({}, 1, 1e-3f, p.decay, p.grad, &p.value, &m, &v);
  }
  ASSERT_TRUE((*device)->Download(&got).ok());
  for (size_t i = 0; i < got.params.size(); ++i) {
    ExpectClose(got.params[i].name, got.params[i].value.data, host->params[i].value.data);
  }
}

}  // namespace
}  // namespace sublet::train::cuda
