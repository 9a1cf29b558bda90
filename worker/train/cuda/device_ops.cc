#include "worker/train/cuda/device_ops.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace sublet::train::cuda {
namespace {

cublasOperation_t Op(Trans t) { return t == Trans::kYes ? CUBLAS_OP_T : CUBLAS_OP_N; }

int I(int64_t v) { return static_cast<int>(v); }

}  // namespace

absl::Status CudaCheck(const char* what, cudaError_t e) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(e)));
}

absl::Status CublasCheck(const char* what, cublasStatus_t s) {
  if (s == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", cublasGetStatusString(s)));
}

// cuBLAS is column-major. A row-major matrix with row stride ld is, read
// column-major with the same ld, its transpose; so row-major C = A B is
// column-major C^T = B^T A^T: swap the operands (and m with n) and keep each
// operand's own transpose flag.
absl::Status Gemm(const Device& d, Trans ta, Trans tb, int64_t m, int64_t n, int64_t k,
                  float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                  float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0 || k == 0) return absl::OkStatus();  // the model never asks for k = 0
  return CublasCheck("cublasSgemm", cublasSgemm(d.blas, Op(tb), Op(ta), I(n), I(m), I(k), &alpha,
                                                b, I(ldb), a, I(lda), &beta, c, I(ldc)));
}

absl::Status GemmBatched(const Device& d, Trans ta, Trans tb, int64_t m, int64_t n, int64_t k,
                         float alpha, Strided a, Strided b, float beta, float* c, int64_t ldc,
                         int64_t stride_c, int64_t batch) {
  if (m == 0 || n == 0 || k == 0 || batch == 0) return absl::OkStatus();
  return CublasCheck("cublasSgemmStridedBatched",
                     cublasSgemmStridedBatched(d.blas, Op(tb), Op(ta), I(n), I(m), I(k), &alpha,
                                               b.p, I(b.ld), b.stride, a.p, I(a.ld), a.stride,
                                               &beta, c, I(ldc), stride_c, I(batch)));
}

absl::Status LinearForward(const Device& d, const float* x, const float* w, const float* b,
                           int64_t rows, int64_t in, int64_t out, float* y) {
  SUBLET_RETURN_IF_ERROR(CudaCheck("bias", BroadcastRows(b, y, rows, out, d.stream)));
  return Gemm(d, Trans::kNo, Trans::kNo, rows, out, in, 1.0f, x, in, w, out, 1.0f, y, out);
}

absl::Status LinearBackward(const Device& d, const float* x, const float* w, const float* dy,
                            int64_t rows, int64_t in, int64_t out, float* dx, float* dw,
                            float* db) {
  SUBLET_RETURN_IF_ERROR(
      Gemm(d, Trans::kNo, Trans::kYes, rows, in, out, 1.0f, dy, out, w, out, 0.0f, dx, in));
  SUBLET_RETURN_IF_ERROR(
      Gemm(d, Trans::kYes, Trans::kNo, in, out, rows, 1.0f, x, in, dy, out, 1.0f, dw, out));
  return CudaCheck("bias grad", ColumnSumAdd(dy, db, rows, out, d.stream));
}

// Per (batch, head), as attention.h: S = Q K^T / sqrt(hd), P = causal
// softmax(S), Y = P V; one strided-batched GEMM over all batch * heads.
absl::Status AttentionForward(const Device& d, const HeadLayout& l, const float* q,
                              const float* k, const float* v, float* probs, float* y) {
  const int64_t t = l.seq, hd = l.head_dim, n = l.batch * l.heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  SUBLET_RETURN_IF_ERROR(GemmBatched(d, Trans::kNo, Trans::kYes, t, t, hd, scale, {q, hd, t * hd},
                                     {k, hd, t * hd}, 0.0f, probs, t, t * t, n));
  SUBLET_RETURN_IF_ERROR(CudaCheck("causal softmax", CausalSoftmax(probs, n * t, t, d.stream)));
  return GemmBatched(d, Trans::kNo, Trans::kNo, t, hd, t, 1.0f, {probs, t, t * t},
                     {v, hd, t * hd}, 0.0f, y, hd, t * hd, n);
}

// dV = P^T dY, dP = dY V^T, dS = softmax backward of dP, dQ = dS K, dK = dS^T Q.
absl::Status AttentionBackward(const Device& d, const HeadLayout& l, const float* q,
                               const float* k, const float* v, const float* probs,
                               const float* dy, float* ds, float* dq, float* dk, float* dv) {
  const int64_t t = l.seq, hd = l.head_dim, n = l.batch * l.heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const Strided p_op{probs, t, t * t}, dy_op{dy, hd, t * hd};
  SUBLET_RETURN_IF_ERROR(
      GemmBatched(d, Trans::kYes, Trans::kNo, t, hd, t, 1.0f, p_op, dy_op, 0.0f, dv, hd, t * hd, n));
  SUBLET_RETURN_IF_ERROR(GemmBatched(d, Trans::kNo, Trans::kYes, t, t, hd, 1.0f, dy_op,
                                     {v, hd, t * hd}, 0.0f, ds, t, t * t, n));
  SUBLET_RETURN_IF_ERROR(
      CudaCheck("softmax backward", SoftmaxBackward(probs, ds, n * t, t, scale, d.stream)));
  const Strided ds_op{ds, t, t * t};
  SUBLET_RETURN_IF_ERROR(GemmBatched(d, Trans::kNo, Trans::kNo, t, hd, t, 1.0f, ds_op,
                                     {k, hd, t * hd}, 0.0f, dq, hd, t * hd, n));
  return GemmBatched(d, Trans::kYes, Trans::kNo, t, hd, t, 1.0f, ds_op, {q, hd, t * hd}, 0.0f, dk,
                     hd, t * hd, n);
}

}  // namespace sublet::train::cuda
