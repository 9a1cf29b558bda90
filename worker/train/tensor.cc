#include "worker/train/tensor.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sublet::train {
namespace {

int64_t NumElements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

bool WellFormed(const Tensor& t) {
  for (int64_t d : t.shape) {
    if (d < 0) return false;
  }
  return NumElements(t.shape) == t.size();
}

}  // namespace

Tensor Tensor::Zeros(std::vector<int64_t> shape) {
  Tensor t;
  t.data.assign(static_cast<size_t>(NumElements(shape)), 0.0f);
  t.shape = std::move(shape);
  return t;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

absl::Status ExpectShape(const Tensor& t, const std::vector<int64_t>& want,
                         const std::string& what) {
  if (t.shape != want || !WellFormed(t)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has shape ", ShapeString(t.shape), " and ",
                     t.size(), " elements; want ", ShapeString(want)));
  }
  return absl::OkStatus();
}

absl::Status ExpectMatrix(const Tensor& t, const std::string& what) {
  if (t.shape.size() != 2 || !WellFormed(t)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has shape ", ShapeString(t.shape), " and ",
                     t.size(), " elements; want a matrix"));
  }
  return absl::OkStatus();
}

}  // namespace sublet::train
