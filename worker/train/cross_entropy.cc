#include "worker/train/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/status.h"

namespace sublet::train {
namespace {

absl::Status CheckTargets(const Tensor& t, std::span<const int32_t> targets,
                          const std::string& what) {
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(t, what));
  const int64_t rows = t.dim(0), vocab = t.dim(1);
  if (static_cast<int64_t>(targets.size()) != rows || rows == 0) {
    return absl::InvalidArgumentError(
        "cross_entropy: " + std::to_string(targets.size()) + " targets for " +
        std::to_string(rows) + " rows");
  }
  for (int32_t id : targets) {
    if (id < 0 || id >= vocab) {
      return absl::InvalidArgumentError("cross_entropy: target " +
                                        std::to_string(id) +
                                        " outside vocab " +
                                        std::to_string(vocab));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CrossEntropyForward(const Tensor& logits,
                                 std::span<const int32_t> targets,
                                 double* loss, Tensor* probs) {
  SUBLET_RETURN_IF_ERROR(CheckTargets(logits, targets, "cross_entropy: logits"));
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  *probs = Tensor::Zeros(logits.shape);
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* l = &logits.data[r * vocab];
    float* p = &probs->data[r * vocab];
    const float max = *std::max_element(l, l + vocab);
    double sum = 0.0;
    for (int64_t j = 0; j < vocab; ++j) {
      p[j] = std::exp(l[j] - max);
      sum += p[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j < vocab; ++j) p[j] *= inv;
    total += std::log(sum) + max - l[targets[r]];
  }
  *loss = total / rows;
  return absl::OkStatus();
}

absl::Status CrossEntropyBackward(const Tensor& probs,
                                  std::span<const int32_t> targets,
                                  Tensor* dlogits) {
  SUBLET_RETURN_IF_ERROR(CheckTargets(probs, targets, "cross_entropy: probs"));
  const int64_t rows = probs.dim(0), vocab = probs.dim(1);
  const float inv_rows = 1.0f / static_cast<float>(rows);
  *dlogits = Tensor::Zeros(probs.shape);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < vocab; ++j) {
      dlogits->data[r * vocab + j] = probs.data[r * vocab + j] * inv_rows;
    }
    dlogits->data[r * vocab + targets[r]] -= inv_rows;
  }
  return absl::OkStatus();
}

}  // namespace sublet::train
