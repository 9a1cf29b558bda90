// Softmax cross-entropy over the vocabulary, averaged over rows:
//   loss = (1 / rows) * sum_r ( logsumexp(logits[r]) - logits[r][target_r] )
// computed with the row maximum subtracted, so large logits do not overflow.
// Forward keeps the softmax probabilities; backward is
//   dlogits[r][j] = (probs[r][j] - [j == target_r]) / rows
// i.e. the gradient of the mean loss, overwritten. Targets come from data and
// are validated: an id outside [0, vocab) is InvalidArgument.
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "worker/train/tensor.h"

namespace sublet::train {

// logits: [rows, vocab]; targets: rows ids; probs: [rows, vocab].
absl::Status CrossEntropyForward(const Tensor& logits,
                                 std::span<const int32_t> targets,
                                 double* loss, Tensor* probs);

absl::Status CrossEntropyBackward(const Tensor& probs,
                                  std::span<const int32_t> targets,
                                  Tensor* dlogits);

}  // namespace sublet::train
