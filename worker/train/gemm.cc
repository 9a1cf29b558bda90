#include "worker/train/gemm.h"

#include <cblas.h>

namespace sublet::train {
namespace {

CBLAS_TRANSPOSE ToCblas(Trans t) {
  return t == Trans::kYes ? CblasTrans : CblasNoTrans;
}

}  // namespace

void Gemm(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k,
          float alpha, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc) {
  // BLAS rejects zero-sized leading dimensions even when nothing is read.
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] *= beta;
    }
    return;
  }
  cblas_sgemm(CblasRowMajor, ToCblas(trans_a), ToCblas(trans_b),
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
              c, static_cast<int>(ldc));
}

void SetGemmThreads(int threads) { openblas_set_num_threads(threads); }

}  // namespace sublet::train
