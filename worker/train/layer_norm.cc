#include "worker/train/layer_norm.h"

#include <cmath>

#include "common/status.h"

namespace sublet::train {

absl::Status LayerNormForward(const Tensor& x, const Tensor& gamma,
                              const Tensor& beta, Tensor* y,
                              LayerNormCache* cache) {
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(x, "layer_norm: x"));
  const int64_t rows = x.dim(0), d = x.dim(1);
  SUBLET_RETURN_IF_ERROR(ExpectShape(gamma, {d}, "layer_norm: gamma"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(beta, {d}, "layer_norm: beta"));
  if (d == 0) return absl::InvalidArgumentError("layer_norm: x has no features");

  *y = Tensor::Zeros({rows, d});
  cache->mean = Tensor::Zeros({rows});
  cache->rstd = Tensor::Zeros({rows});
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = &x.data[r * d];
    double sum = 0.0;
    for (int64_t i = 0; i < d; ++i) sum += xr[i];
    const double mean = sum / d;
    double sq = 0.0;
    for (int64_t i = 0; i < d; ++i) sq += (xr[i] - mean) * (xr[i] - mean);
    const double rstd = 1.0 / std::sqrt(sq / d + kLayerNormEpsilon);
    float* yr = &y->data[r * d];
    for (int64_t i = 0; i < d; ++i) {
      yr[i] = static_cast<float>((xr[i] - mean) * rstd) * gamma.data[i] +
              beta.data[i];
    }
    cache->mean.data[r] = static_cast<float>(mean);
    cache->rstd.data[r] = static_cast<float>(rstd);
  }
  return absl::OkStatus();
}

absl::Status LayerNormBackward(const Tensor& x, const Tensor& gamma,
                               const LayerNormCache& cache, const Tensor& dy,
                               Tensor* dx, Tensor* dgamma, Tensor* dbeta) {
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(x, "layer_norm: x"));
  const int64_t rows = x.dim(0), d = x.dim(1);
  SUBLET_RETURN_IF_ERROR(ExpectShape(gamma, {d}, "layer_norm: gamma"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(cache.mean, {rows}, "layer_norm: mean"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(cache.rstd, {rows}, "layer_norm: rstd"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(dy, {rows, d}, "layer_norm: dy"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(*dgamma, {d}, "layer_norm: dgamma"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(*dbeta, {d}, "layer_norm: dbeta"));

  *dx = Tensor::Zeros({rows, d});
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = &x.data[r * d];
    const float* dyr = &dy.data[r * d];
    const double mean = cache.mean.data[r], rstd = cache.rstd.data[r];
    double g_sum = 0.0, gx_sum = 0.0;
    for (int64_t i = 0; i < d; ++i) {
      const double xhat = (xr[i] - mean) * rstd;
      const double g = static_cast<double>(dyr[i]) * gamma.data[i];
      g_sum += g;
      gx_sum += g * xhat;
      dgamma->data[i] += static_cast<float>(dyr[i] * xhat);
      dbeta->data[i] += dyr[i];
    }
    const double g_mean = g_sum / d, gx_mean = gx_sum / d;
    float* dxr = &dx->data[r * d];
    for (int64_t i = 0; i < d; ++i) {
      const double xhat = (xr[i] - mean) * rstd;
      const double g = static_cast<double>(dyr[i]) * gamma.data[i];
      dxr[i] = static_cast<float>(rstd * (g - g_mean - xhat * gx_mean));
    }
  }
  return absl::OkStatus();
}

}  // namespace sublet::train
