// AdamW (decoupled weight decay), the learning-rate schedule (linear warm-up
// then cosine decay) and global-norm gradient clipping, on host tensors.
//
// For step t (1-based) with gradient g, per element:
//   m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
//   p -= lr * ( m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd * p )
// with wd applied only to parameters marked for decay (matrices).
#pragma once

#include <cstddef>
#include <cstdint>

#include "worker/train/element_math.h"
#include "worker/train/tensor.h"

namespace sublet::train {

struct AdamWOptions {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;
};

// The constants of step `t` for one tensor (bias corrections in double, wd
// zero unless `decay`); math::AdamWStep applies them to each element, on the
// host here and in the CUDA twin (worker/train/cuda/).
math::AdamWScalars AdamWScalarsAt(const AdamWOptions& options, int64_t t, float lr, bool decay);

// m and v have the parameter's shape; `t` is the 1-based step.
void AdamWUpdate(const AdamWOptions& options, int64_t t, float lr, bool decay, const Tensor& grad,
                 Tensor* param, Tensor* m, Tensor* v);

// The same step out of place: reads param, m and v, writes the new values to
// *_out (same shapes), leaving the inputs untouched. Bitwise what AdamWUpdate
// leaves in place. Its writes go to other cache lines, which the CPU may
// have to read first, yet on the dev VM it runs as fast as the in-place
// step (sublet-bench ckpt, async_stall).
// The trainer uses it for the step after a checkpoint, whose state the
// checkpoint writer is still reading (double buffering: no snapshot copy).
void AdamWUpdateInto(const AdamWOptions& options, int64_t t, float lr, bool decay,
                     const Tensor& grad, const Tensor& param, const Tensor& m, const Tensor& v,
                     Tensor* param_out, Tensor* m_out, Tensor* v_out);

// Warm-up from peak/warmup to peak over `warmup` steps, then cosine down to
// min_lr at `total` steps. `step` is 0-based (the step about to be taken).
struct LrSchedule {
  float peak = 1e-3f;
  float min_lr = 1e-4f;
  int64_t warmup = 10;
  int64_t total = 100;
  float At(int64_t step) const;
};

// The factor gradients are multiplied by so that their global norm
// sqrt(sum_sq) is at most max_norm (1 when it already is).
float ClipFactor(double sum_sq, double max_norm);

// The sum of x*x over `x` in double, in a fixed order (eight interleaved
// partial sums, added pairwise at the end), so every rank and every
// schedule gets the same bits for the same values.
double SumSquares(const float* x, size_t n);

}  // namespace sublet::train
