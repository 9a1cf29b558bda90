// A minimal host tensor for the training building blocks: a row-major float
// buffer and its shape. It is a passive value; every layer function checks the
// shapes it is given with ExpectShape and answers InvalidArgument on a
// mismatch, so a malformed tensor (data size not matching the shape included)
// never reaches a BLAS call.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace sublet::train {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;  // row-major, data.size() == product of shape

  // A tensor of the given shape filled with zeros.
  static Tensor Zeros(std::vector<int64_t> shape);

  int64_t dim(size_t i) const { return shape[i]; }
  int64_t size() const { return static_cast<int64_t>(data.size()); }
};

// "[2,3,4]"; used in error messages.
std::string ShapeString(const std::vector<int64_t>& shape);

// OK when `t` has exactly shape `want` and a buffer of that many elements;
// otherwise InvalidArgument naming `what` (e.g. "linear: w").
absl::Status ExpectShape(const Tensor& t, const std::vector<int64_t>& want,
                         const std::string& what);

// OK when `t` is a well-formed matrix (rank 2, buffer matching); used for
// inputs whose row count the caller chooses.
absl::Status ExpectMatrix(const Tensor& t, const std::string& what);

}  // namespace sublet::train
