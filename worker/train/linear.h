// A fully connected layer with bias on the host:  y = x * w + b,  for x of
// shape [rows, in], w of shape [in, out] (input-major, so the forward GEMM
// needs no transpose) and b of shape [out].
//
// Conventions shared by every layer in worker/train/:
//  - Forward and backward are free functions on Tensors; outputs are resized
//    and overwritten.
//  - Gradients of the input are overwritten; gradients of parameters are
//    accumulated (+=), so micro-batches and tied weights add into one buffer.
//    Parameter-gradient tensors must already have the parameter's shape.
//  - Every shape is checked first; a mismatch returns InvalidArgument and
//    leaves the outputs untouched.
#pragma once

#include "absl/status/status.h"
#include "worker/train/tensor.h"

namespace sublet::train {

absl::Status LinearForward(const Tensor& x, const Tensor& w, const Tensor& b,
                           Tensor* y);

// Given dy = dL/dy: dx = dy * w^T (overwritten), dw += x^T * dy, and db +=
// the column sums of dy.
absl::Status LinearBackward(const Tensor& x, const Tensor& w, const Tensor& dy,
                            Tensor* dx, Tensor* dw, Tensor* db);

}  // namespace sublet::train
