#include "worker/train/gelu.h"

#include "common/status.h"
#include "worker/train/element_math.h"

namespace sublet::train {

absl::Status GeluForward(const Tensor& x, Tensor* y) {
  SUBLET_RETURN_IF_ERROR(ExpectShape(x, x.shape, "gelu: x"));
  *y = Tensor::Zeros(x.shape);
  for (int64_t i = 0; i < x.size(); ++i) y->data[i] = math::GeluForwardAt(x.data[i]);
  return absl::OkStatus();
}

absl::Status GeluBackward(const Tensor& x, const Tensor& dy, Tensor* dx) {
  SUBLET_RETURN_IF_ERROR(ExpectShape(x, x.shape, "gelu: x"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(dy, x.shape, "gelu: dy"));
  *dx = Tensor::Zeros(x.shape);
  for (int64_t i = 0; i < x.size(); ++i) {
    dx->data[i] = math::GeluBackwardAt(x.data[i], dy.data[i]);
  }
  return absl::OkStatus();
}

}  // namespace sublet::train
