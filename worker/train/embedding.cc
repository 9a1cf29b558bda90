#include "worker/train/embedding.h"

#include <string>

#include "common/status.h"
#include "worker/train/gemm.h"

namespace sublet::train {
namespace {

absl::Status CheckTokens(std::span<const int32_t> tokens, int64_t seq,
                         int64_t vocab, int64_t max_seq) {
  if (seq <= 0 || seq > max_seq) {
    return absl::InvalidArgumentError(
        "embedding: seq " + std::to_string(seq) + " outside [1, " +
        std::to_string(max_seq) + "]");
  }
  if (tokens.size() % static_cast<size_t>(seq) != 0) {
    return absl::InvalidArgumentError(
        "embedding: " + std::to_string(tokens.size()) +
        " tokens are not whole sequences of " + std::to_string(seq));
  }
  for (int32_t id : tokens) {
    if (id < 0 || id >= vocab) {
      return absl::InvalidArgumentError("embedding: token " +
                                        std::to_string(id) + " outside vocab " +
                                        std::to_string(vocab));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status EmbeddingForward(std::span<const int32_t> tokens, int64_t seq,
                              const Tensor& wte, const Tensor& wpe, Tensor* y) {
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(wte, "embedding: wte"));
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(wpe, "embedding: wpe"));
  const int64_t width = wte.dim(1);
  SUBLET_RETURN_IF_ERROR(ExpectShape(wpe, {wpe.dim(0), width}, "embedding: wpe"));
  SUBLET_RETURN_IF_ERROR(CheckTokens(tokens, seq, wte.dim(0), wpe.dim(0)));
  const int64_t rows = static_cast<int64_t>(tokens.size());
  *y = Tensor::Zeros({rows, width});
  for (int64_t r = 0; r < rows; ++r) {
    const float* te = &wte.data[tokens[r] * width];
    const float* pe = &wpe.data[(r % seq) * width];
    float* out = &y->data[r * width];
    for (int64_t c = 0; c < width; ++c) out[c] = te[c] + pe[c];
  }
  return absl::OkStatus();
}

absl::Status EmbeddingBackward(std::span<const int32_t> tokens, int64_t seq,
                               const Tensor& dy, Tensor* dwte, Tensor* dwpe) {
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(*dwte, "embedding: dwte"));
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(*dwpe, "embedding: dwpe"));
  const int64_t width = dwte->dim(1);
  SUBLET_RETURN_IF_ERROR(
      ExpectShape(*dwpe, {dwpe->dim(0), width}, "embedding: dwpe"));
  SUBLET_RETURN_IF_ERROR(CheckTokens(tokens, seq, dwte->dim(0), dwpe->dim(0)));
  const int64_t rows = static_cast<int64_t>(tokens.size());
  SUBLET_RETURN_IF_ERROR(ExpectShape(dy, {rows, width}, "embedding: dy"));
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = &dy.data[r * width];
    float* te = &dwte->data[tokens[r] * width];
    float* pe = &dwpe->data[(r % seq) * width];
    for (int64_t c = 0; c < width; ++c) {
      te[c] += g[c];
      pe[c] += g[c];
    }
  }
  return absl::OkStatus();
}

absl::Status TiedHeadForward(const Tensor& x, const Tensor& wte,
                             Tensor* logits) {
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(x, "tied_head: x"));
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(wte, "tied_head: wte"));
  const int64_t rows = x.dim(0), width = x.dim(1), vocab = wte.dim(0);
  SUBLET_RETURN_IF_ERROR(ExpectShape(wte, {vocab, width}, "tied_head: wte"));
  *logits = Tensor::Zeros({rows, vocab});
  Gemm(Trans::kNo, Trans::kYes, rows, vocab, width, 1.0f, x.data.data(), width,
       wte.data.data(), width, 0.0f, logits->data.data(), vocab);
  return absl::OkStatus();
}

absl::Status TiedHeadBackward(const Tensor& x, const Tensor& wte,
                              const Tensor& dlogits, Tensor* dx, Tensor* dwte) {
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(x, "tied_head: x"));
  SUBLET_RETURN_IF_ERROR(ExpectMatrix(wte, "tied_head: wte"));
  const int64_t rows = x.dim(0), width = x.dim(1), vocab = wte.dim(0);
  SUBLET_RETURN_IF_ERROR(ExpectShape(wte, {vocab, width}, "tied_head: wte"));
  SUBLET_RETURN_IF_ERROR(
      ExpectShape(dlogits, {rows, vocab}, "tied_head: dlogits"));
  SUBLET_RETURN_IF_ERROR(ExpectShape(*dwte, {vocab, width}, "tied_head: dwte"));
  *dx = Tensor::Zeros({rows, width});
  Gemm(Trans::kNo, Trans::kNo, rows, width, vocab, 1.0f, dlogits.data.data(),
       vocab, wte.data.data(), width, 0.0f, dx->data.data(), width);
  Gemm(Trans::kYes, Trans::kNo, vocab, width, rows, 1.0f, dlogits.data.data(),
       vocab, x.data.data(), width, 1.0f, dwte->data.data(), width);
  return absl::OkStatus();
}

}  // namespace sublet::train
