#include "worker/train/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/train/gemm.h"

namespace sublet::train {
namespace {

// Checks q, k, v against `shape` and returns the model width through `width`.
absl::Status CheckInputs(const AttentionShape& shape, const Tensor& q,
                         const Tensor& k, const Tensor& v, int64_t* width) {
  if (shape.batch <= 0 || shape.seq <= 0 || shape.heads <= 0) {
    return absl::InvalidArgumentError(
        "attention: batch, seq and heads must be positive");
  }
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(q, "attention: q"));
  *width = q.dim(1);
  if (*width == 0 || *width % shape.heads != 0) {
    return absl::InvalidArgumentError(
        "attention: width " + std::to_string(*width) +
        " is not a positive multiple of " + std::to_string(shape.heads) +
        " heads");
  }
  const std::vector<int64_t> want = {shape.batch * shape.seq, *width};
  SUBLET_RETURN_IF_ERROR(ExpectShape(q, want, "attention: q"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(k, want, "attention: k"));
  return ExpectShape(v, want, "attention: v");
}

// Row-wise softmax of the seq x seq scores in place, entries above the
// diagonal masked to zero probability.
void CausalSoftmax(int64_t seq, float* s) {
  for (int64_t i = 0; i < seq; ++i) {
    float* row = s + i * seq;
    const float max = *std::max_element(row, row + i + 1);
    double sum = 0.0;
    for (int64_t j = 0; j <= i; ++j) {
      row[j] = std::exp(row[j] - max);
      sum += row[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j <= i; ++j) row[j] *= inv;
    std::fill(row + i + 1, row + seq, 0.0f);
  }
}

// dS = P * (dP - rowsum(dP * P)) * scale, in place over dP.
void SoftmaxBackward(int64_t seq, float scale, const float* p, float* dp) {
  for (int64_t i = 0; i < seq; ++i) {
    const float* pr = p + i * seq;
    float* dr = dp + i * seq;
    double dot = 0.0;
    for (int64_t j = 0; j < seq; ++j) dot += static_cast<double>(dr[j]) * pr[j];
    for (int64_t j = 0; j < seq; ++j) {
      dr[j] = pr[j] * (dr[j] - static_cast<float>(dot)) * scale;
    }
  }
}

}  // namespace

absl::Status CausalAttentionForward(const AttentionShape& shape,
                                    const Tensor& q, const Tensor& k,
                                    const Tensor& v, Tensor* y, Tensor* probs) {
  int64_t width = 0;
  SUBLET_RETURN_IF_ERROR(CheckInputs(shape, q, k, v, &width));
  const int64_t t = shape.seq, hd = width / shape.heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  *y = Tensor::Zeros(q.shape);
  *probs = Tensor::Zeros({shape.batch, shape.heads, t, t});
  for (int64_t b = 0; b < shape.batch; ++b) {
    for (int64_t h = 0; h < shape.heads; ++h) {
      const int64_t off = b * t * width + h * hd;
      float* p = &probs->data[(b * shape.heads + h) * t * t];
      Gemm(Trans::kNo, Trans::kYes, t, t, hd, scale, &q.data[off], width,
           &k.data[off], width, 0.0f, p, t);
      CausalSoftmax(t, p);
      Gemm(Trans::kNo, Trans::kNo, t, hd, t, 1.0f, p, t, &v.data[off], width,
           0.0f, &y->data[off], width);
    }
  }
  return absl::OkStatus();
}

absl::Status CausalAttentionBackward(const AttentionShape& shape,
                                     const Tensor& q, const Tensor& k,
                                     const Tensor& v, const Tensor& probs,
                                     const Tensor& dy, Tensor* dq, Tensor* dk,
                                     Tensor* dv) {
  int64_t width = 0;
  SUBLET_RETURN_IF_ERROR(CheckInputs(shape, q, k, v, &width));
  const int64_t t = shape.seq, hd = width / shape.heads;
  SUBLET_RETURN_IF_ERROR(ExpectShape(probs, {shape.batch, shape.heads, t, t},
                                     "attention: probs"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(dy, q.shape, "attention: dy"));
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  *dq = Tensor::Zeros(q.shape);
  *dk = Tensor::Zeros(q.shape);
  *dv = Tensor::Zeros(q.shape);
  std::vector<float> ds(static_cast<size_t>(t * t));
  for (int64_t b = 0; b < shape.batch; ++b) {
    for (int64_t h = 0; h < shape.heads; ++h) {
      const int64_t off = b * t * width + h * hd;
      const float* p = &probs.data[(b * shape.heads + h) * t * t];
      Gemm(Trans::kYes, Trans::kNo, t, hd, t, 1.0f, p, t, &dy.data[off], width,
           0.0f, &dv->data[off], width);
      Gemm(Trans::kNo, Trans::kYes, t, t, hd, 1.0f, &dy.data[off], width,
           &v.data[off], width, 0.0f, ds.data(), t);
      SoftmaxBackward(t, scale, p, ds.data());
      Gemm(Trans::kNo, Trans::kNo, t, hd, t, 1.0f, ds.data(), t, &k.data[off],
           width, 0.0f, &dq->data[off], width);
      Gemm(Trans::kYes, Trans::kNo, t, hd, t, 1.0f, ds.data(), t, &q.data[off],
           width, 0.0f, &dk->data[off], width);
    }
  }
  return absl::OkStatus();
}

}  // namespace sublet::train
