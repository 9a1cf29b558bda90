// Row-major single-precision GEMM through OpenBLAS, the one place the training
// layers call BLAS:  C = alpha * op(A) * op(B) + beta * C,  op(A) is m x k and
// op(B) is k x n. The leading dimensions are row strides in elements, so a
// caller can address one attention head inside a [rows, heads * head_dim]
// matrix without copying it out. Sizes must fit in an int (BLAS's interface);
// the layers use small per-call sizes far below that.
#pragma once

#include <cstdint>

namespace sublet::train {

enum class Trans { kNo, kYes };

void Gemm(Trans trans_a, Trans trans_b, int64_t m, int64_t n, int64_t k,
          float alpha, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc);

// Threads OpenBLAS may use per GEMM (process-wide); 1 when several ranks
// share a node's cores.
void SetGemmThreads(int threads);

}  // namespace sublet::train
