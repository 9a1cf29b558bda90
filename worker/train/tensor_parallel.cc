#include "worker/train/tensor_parallel.h"

#include <string>

#include "common/status.h"
#include "worker/train/gemm.h"
#include "worker/train/linear.h"

namespace sublet::train {
namespace {

using collectives::overlap::AllGatherMatmul;
using collectives::overlap::MatmulReduceScatter;

void AddBias(const Tensor& b, Tensor* y) {
  const int64_t rows = y->dim(0), n = y->dim(1);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < n; ++c) y->data[r * n + c] += b.data[c];
  }
}

void AddColumnSums(const Tensor& dy, Tensor* db) {
  const int64_t rows = dy.dim(0), n = dy.dim(1);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < n; ++c) db->data[c] += dy.data[r * n + c];
  }
}

// dw += a^T * b for a: [rows, k], b: [rows, n], dw: [k, n].
void AccumulateWeightGrad(const Tensor& a, const Tensor& b, Tensor* dw) {
  Gemm(Trans::kYes, Trans::kNo, a.dim(1), b.dim(1), a.dim(0), 1.0f, a.data.data(), a.dim(1),
       b.data.data(), b.dim(1), 1.0f, dw->data.data(), b.dim(1));
}

absl::Status CheckRows(int64_t rows, int p, const char* what) {
  if (rows % p == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(std::string(what) + ": " + std::to_string(rows) +
                                    " rows do not split over " + std::to_string(p) + " ranks");
}

}  // namespace

Tensor Transposed(const Tensor& m) {
  Tensor t = Tensor::Zeros({m.dim(1), m.dim(0)});
  for (int64_t r = 0; r < m.dim(0); ++r) {
    for (int64_t c = 0; c < m.dim(1); ++c) t.data[c * m.dim(0) + r] = m.data[r * m.dim(1) + c];
  }
  return t;
}

TensorParallel::TensorParallel(collectives::Communicator* comm, int chunks) : comm_(comm) {
  options_.chunks = chunks;
}

absl::Status TensorParallel::ColumnForward(const Tensor& x_local, const Tensor& w,
                                           const Tensor& b, Tensor* y, Tensor* x_all) {
  if (local()) {
    *x_all = x_local;
    return LinearForward(x_local, w, b, y);
  }
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(x_local, "column parallel: x"));
  const int64_t k = x_local.dim(1), n = w.dim(1), rows = x_local.dim(0) * size();
  SUBLET_RETURN_IF_ERROR(ExpectShape(w, {k, n}, "column parallel: w"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(b, {n}, "column parallel: b"));
  *y = Tensor::Zeros({rows, n});
  *x_all = Tensor::Zeros({rows, k});
  SUBLET_RETURN_IF_ERROR(AllGatherMatmul(*comm_, x_local.data.data(), x_local.dim(0), k,
                                         w.data.data(), n, y->data.data(), options_,
                                         x_all->data.data()));
  AddBias(b, y);
  return absl::OkStatus();
}

absl::Status TensorParallel::ColumnBackward(const Tensor& x_all, const Tensor& w,
                                            const Tensor& dy, Tensor* dx_local, Tensor* dw,
                                            Tensor* db) {
  if (local()) return LinearBackward(x_all, w, dy, dx_local, dw, db);
  const int64_t rows = x_all.dim(0), k = x_all.dim(1), n = w.dim(1);
  SUBLET_RETURN_IF_ERROR(CheckRows(rows, size(), "column parallel"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(dy, {rows, n}, "column parallel: dy"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(*dw, {k, n}, "column parallel: dw"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(*db, {n}, "column parallel: db"));
  *dx_local = Tensor::Zeros({rows / size(), k});
  SUBLET_RETURN_IF_ERROR(MatmulReduceScatter(*comm_, dy.data.data(), rows, n, w.data.data(), k,
                                             dx_local->data.data(), Transposing()));
  AccumulateWeightGrad(x_all, dy, dw);
  AddColumnSums(dy, db);
  return absl::OkStatus();
}

absl::Status TensorParallel::RowForward(const Tensor& x, const Tensor& w, const Tensor& b,
                                        Tensor* y_local) {
  if (local()) return LinearForward(x, w, b, y_local);
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(x, "row parallel: x"));
  const int64_t rows = x.dim(0), k = x.dim(1), n = w.dim(1);
  SUBLET_RETURN_IF_ERROR(CheckRows(rows, size(), "row parallel"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(w, {k, n}, "row parallel: w"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(b, {n}, "row parallel: b"));
  *y_local = Tensor::Zeros({rows / size(), n});
  SUBLET_RETURN_IF_ERROR(MatmulReduceScatter(*comm_, x.data.data(), rows, k, w.data.data(), n,
                                             y_local->data.data(), options_));
  AddBias(b, y_local);
  return absl::OkStatus();
}

absl::Status TensorParallel::RowBackward(const Tensor& x, const Tensor& w, const Tensor& dy_local,
                                         Tensor* dx, Tensor* dw, Tensor* db) {
  if (local()) return LinearBackward(x, w, dy_local, dx, dw, db);
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(x, "row parallel: x"));
  const int64_t rows = x.dim(0), k = x.dim(1), n = w.dim(1);
  SUBLET_RETURN_IF_ERROR(CheckRows(rows, size(), "row parallel"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(dy_local, {rows / size(), n}, "row parallel: dy"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(*dw, {k, n}, "row parallel: dw"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(*db, {n}, "row parallel: db"));
  Tensor dy_all = Tensor::Zeros({rows, n});
  *dx = Tensor::Zeros({rows, k});
  SUBLET_RETURN_IF_ERROR(AllGatherMatmul(*comm_, dy_local.data.data(), rows / size(), n,
                                         w.data.data(), k, dx->data.data(), Transposing(),
                                         dy_all.data.data()));
  AccumulateWeightGrad(x, dy_all, dw);
  AddColumnSums(dy_local, db);
  return absl::OkStatus();
}

absl::Status TensorParallel::AllReduceSum(float* data, size_t count) {
  if (local() || count == 0) return absl::OkStatus();
  return comm_->AllReduce(data, data, count, collectives::DataType::kF32,
                          collectives::ReduceOp::kSum);
}

}  // namespace sublet::train
