// Megatron-style tensor-parallel linear layers with sequence parallelism:
// between blocks every rank of the tensor group holds a contiguous block of
// the activation rows (rank t: rows [t*R/p, (t+1)*R/p) of R), and the two
// kinds of layer move rows through the collective-matmul overlap blocks
// (collectives/overlap/collective_matmul.h), so each GEMM chunk computes
// while the next one is in flight.
//
// Column-parallel (QKV, first MLP layer): w holds this rank's columns.
//   forward   y[R, n_t]    = all_gather(x_local) * w + b   (AllGatherMatmul)
//   backward  dx_local     = reduce_scatter(dy * w^T)      (MatmulReduceScatter)
//             dw += x_all^T dy,  db += colsum(dy)
// Row-parallel (attention output, second MLP layer): w holds this rank's rows.
//   forward   y_local      = reduce_scatter(x * w) + b     (MatmulReduceScatter)
//   backward  dx[R, k_t]   = all_gather(dy_local) * w^T    (AllGatherMatmul,
//             which also returns dy_all for dw += x^T dy_all)
//             db += colsum(dy_local): a partial sum, since b is replicated;
//             the caller sums replicated gradients over the tensor group.
// A null communicator, or one of size 1, runs the plain local layer.
// Layer conventions: linear.h. Thread-compatible.
#pragma once

#include "absl/status/status.h"
#include "collectives/communicator.h"
#include "collectives/overlap/collective_matmul.h"
#include "worker/train/tensor.h"

namespace sublet::train {

class TensorParallel {
 public:
  // `comm` (may be null) is the tensor group and must outlive this object;
  // `chunks` is the collective-matmul chunk count (1 = no overlap).
  explicit TensorParallel(collectives::Communicator* comm, int chunks = 2);

  int size() const { return comm_ == nullptr ? 1 : comm_->size(); }
  int rank() const { return comm_ == nullptr ? 0 : comm_->rank(); }

  // x_local: [R/p, k]; w: [k, n_t]; b: [n_t]; y: [R, n_t]; x_all: [R, k].
  absl::Status ColumnForward(const Tensor& x_local, const Tensor& w, const Tensor& b, Tensor* y,
                             Tensor* x_all);
  absl::Status ColumnBackward(const Tensor& x_all, const Tensor& w, const Tensor& dy,
                              Tensor* dx_local, Tensor* dw, Tensor* db);
  // x: [R, k_t]; w: [k_t, n]; b: [n]; y_local: [R/p, n].
  absl::Status RowForward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor* y_local);
  absl::Status RowBackward(const Tensor& x, const Tensor& w, const Tensor& dy_local, Tensor* dx,
                           Tensor* dw, Tensor* db);

  // In-place sum over the tensor group (replicated parameters' gradients).
  absl::Status AllReduceSum(float* data, size_t count);

 private:
  bool local() const { return size() == 1; }
  // options_ with W multiplied transposed in place (backward's W^T).
  collectives::overlap::CollectiveMatmulOptions Transposing() const {
    collectives::overlap::CollectiveMatmulOptions o = options_;
    o.w_transposed = true;
    return o;
  }

  collectives::Communicator* comm_;
  collectives::overlap::CollectiveMatmulOptions options_;
};

// The transpose of a matrix.
Tensor Transposed(const Tensor& m);

}  // namespace sublet::train
