#include "worker/train/linear.h"

#include <algorithm>
#include <string>

#include "common/status.h"
#include "worker/train/gemm.h"

namespace sublet::train {
namespace {

absl::Status CheckParams(const Tensor& x, const Tensor& w, const Tensor& b) {
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(x, "linear: x"));
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(w, "linear: w"));
  if (w.dim(0) != x.dim(1)) {
    return absl::InvalidArgumentError(
        "linear: w has " + std::to_string(w.dim(0)) + " input rows, x has " +
        std::to_string(x.dim(1)) + " features");
  }
  return ExpectShape(b, {w.dim(1)}, "linear: b");
}

}  // namespace

absl::Status LinearForward(const Tensor& x, const Tensor& w, const Tensor& b,
                           Tensor* y) {
  SUBLET_RETURN_IF_ERROR(CheckParams(x, w, b));
  const int64_t rows = x.dim(0), in = x.dim(1), out = w.dim(1);
  *y = Tensor::Zeros({rows, out});
  // Broadcast the bias into y, then accumulate x * w on top (beta = 1).
  for (int64_t r = 0; r < rows; ++r) {
    std::copy(b.data.begin(), b.data.end(), y->data.begin() + r * out);
  }
  Gemm(Trans::kNo, Trans::kNo, rows, out, in, 1.0f, x.data.data(), in,
       w.data.data(), out, 1.0f, y->data.data(), out);
  return absl::OkStatus();
}

absl::Status LinearBackward(const Tensor& x, const Tensor& w, const Tensor& dy,
                            Tensor* dx, Tensor* dw, Tensor* db) {
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(x, "linear: x"));
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(w, "linear: w"));
  const int64_t rows = x.dim(0), in = x.dim(1), out = w.dim(1);
  SUBLET_RETURN_IF_ERROR(ExpectShape(w, {in, out}, "linear: w"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(dy, {rows, out}, "linear: dy"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(*dw, {in, out}, "linear: dw"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(*db, {out}, "linear: db"));

  *dx = Tensor::Zeros({rows, in});
  Gemm(Trans::kNo, Trans::kYes, rows, in, out, 1.0f, dy.data.data(), out,
       w.data.data(), out, 0.0f, dx->data.data(), in);
  Gemm(Trans::kYes, Trans::kNo, in, out, rows, 1.0f, x.data.data(), in,
       dy.data.data(), out, 1.0f, dw->data.data(), out);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < out; ++c) db->data[c] += dy.data[r * out + c];
  }
  return absl::OkStatus();
}

}  // namespace sublet::train
