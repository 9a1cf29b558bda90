// Token and position embeddings, and the output head tied to the token table.
//
// Embedding: for tokens laid out [batch, seq] (batch-major), row b * seq + t of
// the output is wte[token] + wpe[t]; wte is [vocab, width], wpe is
// [max_seq, width] and seq may not exceed max_seq. Its backward scatters each
// output-gradient row into the token's and the position's rows (tokens that
// repeat add up).
//
// Tied head: logits = x * wte^T, [rows, vocab], reusing the token table as the
// output projection (GPT-2). Its backward is dx = dlogits * wte and
// dwte += dlogits^T * x, so with tying wte's gradient receives both this term
// and the embedding's scatter; both accumulate into the same tensor.
//
// Token ids come from data files and are validated: an id outside [0, vocab)
// is InvalidArgument. Layer conventions: linear.h.
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "worker/train/tensor.h"

namespace sublet::train {

absl::Status EmbeddingForward(std::span<const int32_t> tokens, int64_t seq,
                              const Tensor& wte, const Tensor& wpe, Tensor* y);

absl::Status EmbeddingBackward(std::span<const int32_t> tokens, int64_t seq,
                               const Tensor& dy, Tensor* dwte, Tensor* dwpe);

absl::Status TiedHeadForward(const Tensor& x, const Tensor& wte,
                             Tensor* logits);

absl::Status TiedHeadBackward(const Tensor& x, const Tensor& wte,
                              const Tensor& dlogits, Tensor* dx, Tensor* dwte);

}  // namespace sublet::train
