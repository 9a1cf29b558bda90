// GELU with the tanh approximation (as in GPT-2), elementwise on the host:
//   y = 0.5 * x * (1 + tanh(u)),  u = sqrt(2/pi) * (x + 0.044715 * x^3)
// and its derivative, by the product and chain rules,
//   dy/dx = 0.5 * (1 + tanh(u)) + 0.5 * x * (1 - tanh(u)^2) * du/dx,
//   du/dx = sqrt(2/pi) * (1 + 3 * 0.044715 * x^2).
// Backward recomputes u from x rather than caching it: one tanh per element is
// cheaper than keeping another activation-sized buffer. Any shape is accepted;
// dy must match x. Layer conventions: linear.h.
#pragma once

#include "absl/status/status.h"
#include "worker/train/tensor.h"

namespace sublet::train {

absl::Status GeluForward(const Tensor& x, Tensor* y);

absl::Status GeluBackward(const Tensor& x, const Tensor& dy, Tensor* dx);

}  // namespace sublet::train
