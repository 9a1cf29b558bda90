// Per-element and per-row arithmetic of the training layers, shared by the
// host layers (worker/train/*.cc) and their CUDA twins
// (worker/train/cuda/kernels.cu). Under nvcc every function is
// __host__ __device__, so the host tests exercise exactly the expressions the
// kernels run; g++ sees plain inline functions.
//
// Two levels:
//  - Element functions (GeluForwardAt, AdamWStep, LayerNormOutput, ...): one
//    output from scalars. The kernels call these per thread.
//  - Row twins (LayerNormRowForward, CausalSoftmaxRow, CrossEntropyRow, ...):
//    one row, sequentially, built from the element functions. On the host they
//    give bitwise the results of the layers in layer_norm.cc, attention.cc and
//    cross_entropy.cc (tests/train/element_math_test.cc checks it); the kernels
//    compute the same row with a parallel reduction of the sums, which differs
//    from the sequential order only in double-precision rounding.
//
// Float expressions keep the layers' exact operation order and types (float
// math in float, statistics in double): reordering them would change the
// losses that the topology tests compare. Math calls are the C float
// functions (expf, sqrtf), which glibc and CUDA both provide; sqrtf is
// correctly rounded on both, expf agrees to a few ulp.
#pragma once

#include <math.h>

#include <cstdint>

#if defined(__CUDACC__)
#define SUBLET_TRAIN_HD __host__ __device__
#else
#define SUBLET_TRAIN_HD
#endif

namespace sublet::train::math {

// GELU, tanh approximation (gelu.h).
inline constexpr float kSqrt2OverPi = 0.7978845608028654f;
inline constexpr float kGeluCubic = 0.044715f;

// tanh(u) as 1 - 2 / (e^{2u} + 1): one expf instead of tanhf, which glibc
// computes through expm1f at several times the cost (a fifth of a `small`
// step on the host). Within a few 1e-8 of tanhf in absolute terms, which is
// what 0.5 * v * (1 + t) needs; e^{2u} overflowing to inf gives exactly 1.
SUBLET_TRAIN_HD inline float TanhViaExp(float u) { return 1.0f - 2.0f / (expf(2.0f * u) + 1.0f); }

SUBLET_TRAIN_HD inline float GeluForwardAt(float v) {
  const float t = TanhViaExp(kSqrt2OverPi * (v + kGeluCubic * v * v * v));
  return 0.5f * v * (1.0f + t);
}

// dL/dx at x = v given dL/dy = dy.
SUBLET_TRAIN_HD inline float GeluBackwardAt(float v, float dy) {
  const float t = TanhViaExp(kSqrt2OverPi * (v + kGeluCubic * v * v * v));
  const float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * v * v);
  const float grad = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du;
  return grad * dy;
}

// AdamW (adamw.h) for one element. c1 = 1 - beta1^t and c2 = 1 - beta2^t are
// computed once per tensor in double; wd is 0 for parameters without decay.
struct AdamWScalars {
  float beta1, beta2, eps, wd, lr;
  double c1, c2;
};

SUBLET_TRAIN_HD inline void AdamWStep(const AdamWScalars& s, float g, float* m, float* v,
                                      float* p) {
  *m = s.beta1 * *m + (1.0f - s.beta1) * g;
  *v = s.beta2 * *v + (1.0f - s.beta2) * g * g;
  const float mhat = static_cast<float>(*m / s.c1);
  const float vhat = static_cast<float>(*v / s.c2);
  *p -= s.lr * (mhat / (sqrtf(vhat) + s.eps) + s.wd * *p);
}

// LayerNorm (layer_norm.h); statistics in double.
SUBLET_TRAIN_HD inline double LayerNormRstd(double centred_sq_sum, int64_t d, float epsilon) {
  return 1.0 / sqrt(centred_sq_sum / d + epsilon);
}

SUBLET_TRAIN_HD inline float LayerNormOutput(float x, double mean, double rstd, float gamma,
                                             float beta) {
  return static_cast<float>((x - mean) * rstd) * gamma + beta;
}

SUBLET_TRAIN_HD inline double LayerNormXhat(float x, double mean, double rstd) {
  return (x - mean) * rstd;
}

// dx for one element, g = dy * gamma; g_mean and gx_mean are the row means of
// g and g * xhat.
SUBLET_TRAIN_HD inline float LayerNormInputGrad(double rstd, double g, double g_mean, double xhat,
                                                double gx_mean) {
  return static_cast<float>(rstd * (g - g_mean - xhat * gx_mean));
}

// Softmax pieces (attention.h, cross_entropy.h): exponentials relative to the
// row maximum, summed in double, normalised by a float reciprocal.
SUBLET_TRAIN_HD inline float SoftmaxExp(float logit, float max) { return expf(logit - max); }

SUBLET_TRAIN_HD inline float SoftmaxInverse(double sum) { return static_cast<float>(1.0 / sum); }

// The causal mask: query i sees keys j <= i.
SUBLET_TRAIN_HD inline bool CausalVisible(int64_t i, int64_t j) { return j <= i; }

// dS for one element: p * (dp - rowsum(dp * p)) * scale.
SUBLET_TRAIN_HD inline float SoftmaxBackwardAt(float p, float dp, double dot, float scale) {
  return p * (dp - static_cast<float>(dot)) * scale;
}

// One row's cross-entropy: logsumexp - logit of the target.
SUBLET_TRAIN_HD inline double CrossEntropyRowLoss(double sum, float max, float target_logit) {
  return log(sum) + max - target_logit;
}

// dlogits for one element of the mean loss over `rows` rows (inv_rows = 1/rows).
SUBLET_TRAIN_HD inline float CrossEntropyGradAt(float p, bool is_target, float inv_rows) {
  const float g = p * inv_rows;
  return is_target ? g - inv_rows : g;
}

// ---- Row twins -------------------------------------------------------------

SUBLET_TRAIN_HD inline float RowMax(const float* row, int64_t n) {
  float max = row[0];
  for (int64_t j = 1; j < n; ++j) max = row[j] > max ? row[j] : max;
  return max;
}

// y = LayerNorm(x) for one row of d; writes the row's mean and rstd.
SUBLET_TRAIN_HD inline void LayerNormRowForward(const float* x, int64_t d, const float* gamma,
                                                const float* beta, float epsilon, float* y,
                                                float* mean_out, float* rstd_out) {
  double sum = 0.0;
  for (int64_t i = 0; i < d; ++i) sum += x[i];
  const double mean = sum / d;
  double sq = 0.0;
  for (int64_t i = 0; i < d; ++i) sq += (x[i] - mean) * (x[i] - mean);
  const double rstd = LayerNormRstd(sq, d, epsilon);
  for (int64_t i = 0; i < d; ++i) y[i] = LayerNormOutput(x[i], mean, rstd, gamma[i], beta[i]);
  *mean_out = static_cast<float>(mean);
  *rstd_out = static_cast<float>(rstd);
}

// dx for one row (overwritten); dgamma and dbeta accumulate the row's terms.
SUBLET_TRAIN_HD inline void LayerNormRowBackward(const float* x, const float* dy, int64_t d,
                                                 const float* gamma, float mean_f, float rstd_f,
                                                 float* dx, float* dgamma, float* dbeta) {
  const double mean = mean_f, rstd = rstd_f;
  double g_sum = 0.0, gx_sum = 0.0;
  for (int64_t i = 0; i < d; ++i) {
    const double xhat = LayerNormXhat(x[i], mean, rstd);
    const double g = static_cast<double>(dy[i]) * gamma[i];
    g_sum += g;
    gx_sum += g * xhat;
    dgamma[i] += static_cast<float>(dy[i] * xhat);
    dbeta[i] += dy[i];
  }
  const double g_mean = g_sum / d, gx_mean = gx_sum / d;
  for (int64_t i = 0; i < d; ++i) {
    const double xhat = LayerNormXhat(x[i], mean, rstd);
    const double g = static_cast<double>(dy[i]) * gamma[i];
    dx[i] = LayerNormInputGrad(rstd, g, g_mean, xhat, gx_mean);
  }
}

// Row i of a seq x seq score matrix, in place: softmax over keys 0..i, zero
// probability for the masked keys.
SUBLET_TRAIN_HD inline void CausalSoftmaxRow(float* row, int64_t i, int64_t seq) {
  const float max = RowMax(row, i + 1);
  double sum = 0.0;
  for (int64_t j = 0; j < seq; ++j) {
    if (!CausalVisible(i, j)) break;
    row[j] = SoftmaxExp(row[j], max);
    sum += row[j];
  }
  const float inv = SoftmaxInverse(sum);
  for (int64_t j = 0; j < seq; ++j) row[j] = CausalVisible(i, j) ? row[j] * inv : 0.0f;
}

// dS over dP in place for one row of n.
SUBLET_TRAIN_HD inline void SoftmaxBackwardRow(const float* p, float* dp, int64_t n, float scale) {
  double dot = 0.0;
  for (int64_t j = 0; j < n; ++j) dot += static_cast<double>(dp[j]) * p[j];
  for (int64_t j = 0; j < n; ++j) dp[j] = SoftmaxBackwardAt(p[j], dp[j], dot, scale);
}

// Softmax probabilities of one row of logits; returns the row's loss.
SUBLET_TRAIN_HD inline double CrossEntropyRow(const float* logits, int64_t vocab, int32_t target,
                                              float* probs) {
  const float max = RowMax(logits, vocab);
  double sum = 0.0;
  for (int64_t j = 0; j < vocab; ++j) {
    probs[j] = SoftmaxExp(logits[j], max);
    sum += probs[j];
  }
  const float inv = SoftmaxInverse(sum);
  for (int64_t j = 0; j < vocab; ++j) probs[j] *= inv;
  return CrossEntropyRowLoss(sum, max, logits[target]);
}

}  // namespace sublet::train::math
