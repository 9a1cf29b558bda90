#include "worker/train/gelu.h"

#include <cmath>

#include "common/status.h"

namespace sublet::train {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubic = 0.044715f;

}  // namespace

absl::Status GeluForward(const Tensor& x, Tensor* y) {
  SUBLET_RETURN_IF_ERROR(ExpectShape(x, x.shape, "gelu: x"));
  *y = Tensor::Zeros(x.shape);
  for (int64_t i = 0; i < x.size(); ++i) {
    const float v = x.data[i];
    const float t = std::tanh(kSqrt2OverPi * (v + kCubic * v * v * v));
    y->data[i] = 0.5f * v * (1.0f + t);
  }
  return absl::OkStatus();
}

absl::Status GeluBackward(const Tensor& x, const Tensor& dy, Tensor* dx) {
  SUBLET_RETURN_IF_ERROR(ExpectShape(x, x.shape, "gelu: x"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(dy, x.shape, "gelu: dy"));
  *dx = Tensor::Zeros(x.shape);
  for (int64_t i = 0; i < x.size(); ++i) {
    const float v = x.data[i];
    const float t = std::tanh(kSqrt2OverPi * (v + kCubic * v * v * v));
    const float du = kSqrt2OverPi * (1.0f + 3.0f * kCubic * v * v);
    const float grad = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du;
    dx->data[i] = grad * dy.data[i];
  }
  return absl::OkStatus();
}

}  // namespace sublet::train
