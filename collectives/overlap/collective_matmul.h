// Collective matmul: a GEMM fused with the collective that feeds it or
// consumes it, decomposed into chunks so that chunk i computes while chunk
// i+1 moves (tensor parallelism's all-gather + GEMM and GEMM + reduce-scatter).
// Row-major f32; the host GEMM is OpenBLAS (cblas_sgemm). The CUDA twins in
// collectives/cuda/ run the same chunk plan (numeric.h ChunkOf) with cuBLAS.
//
// AllGatherMatmul, per rank: X_local (m_local x k) is this rank's row block of
// X (p*m_local x k); W (k x n) is replicated; Y = X * W (p*m_local x n).
//   1. Cut X_local's rows into `chunks` pieces (ChunkOf).
//   2. Start the all-gather of piece 0.
//   3. For piece j: start the all-gather of piece j+1, wait for piece j, and
//      multiply its p row blocks into their rows of Y.
// When `x_all` is given, the gathered X (p*m_local x k) is also copied there
// (tensor parallelism's backward needs it for the weight gradient).
//
// MatmulReduceScatter, per rank: X (m x k_local) holds this rank's columns of
// the contraction, W (k_local x n) its rows; the full product sum_q X_q W_q
// (m x n) is reduce-scattered by row blocks: rank r gets rows
// [r*m/p, (r+1)*m/p) in Y (m/p x n). m must be a multiple of p.
//   1. Cut each rank's row block into `chunks` pieces.
//   2. For piece j: multiply the rows of piece j of every row block into a
//      partial buffer (p blocks), start its reduce-scatter, and go on to piece
//      j+1 while it runs; finally wait for all and copy into Y.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "collectives/communicator.h"

namespace sublet::collectives::overlap {

struct CollectiveMatmulOptions {
  int chunks = 4;  // pieces per rank's row block; 1 = no overlap
  // W is given transposed: an n x k (resp. n x k_local) row-major matrix
  // whose transpose is multiplied in (BLAS's transpose flag; nothing is
  // copied). Tensor parallelism's backward multiplies by its weights'
  // transposes this way.
  bool w_transposed = false;
};

absl::Status AllGatherMatmul(Communicator& comm, const float* x_local, int64_t m_local, int64_t k,
                             const float* w, int64_t n, float* y,
                             const CollectiveMatmulOptions& options = {},
                             float* x_all = nullptr);

absl::Status MatmulReduceScatter(Communicator& comm, const float* x, int64_t m, int64_t k_local,
                                 const float* w, int64_t n, float* y,
                                 const CollectiveMatmulOptions& options = {});

}  // namespace sublet::collectives::overlap
