// LayerNorm over the last dimension on the host. For each row x of length d:
//   mean = sum(x) / d,  var = sum((x - mean)^2) / d,  rstd = 1 / sqrt(var + eps)
//   xhat = (x - mean) * rstd,  y = xhat * gamma + beta.
// Forward keeps mean and rstd per row in a LayerNormCache for backward.
// Backward, with g = dy * gamma (elementwise) and means taken over the row:
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
//   dgamma += sum over rows of dy * xhat,  dbeta += sum over rows of dy.
// Statistics are accumulated in double so rows of a few thousand features do
// not lose the variance to cancellation. Layer conventions: linear.h.
#pragma once

#include "absl/status/status.h"
#include "worker/train/tensor.h"

namespace sublet::train {

inline constexpr float kLayerNormEpsilon = 1e-5f;

struct LayerNormCache {
  Tensor mean;  // [rows]
  Tensor rstd;  // [rows]
};

// x: [rows, d]; gamma, beta: [d]; y: [rows, d].
absl::Status LayerNormForward(const Tensor& x, const Tensor& gamma,
                              const Tensor& beta, Tensor* y,
                              LayerNormCache* cache);

absl::Status LayerNormBackward(const Tensor& x, const Tensor& gamma,
                               const LayerNormCache& cache, const Tensor& dy,
                               Tensor* dx, Tensor* dgamma, Tensor* dbeta);

}  // namespace sublet::train
