// Causal multi-head self-attention on the host, from given Q, K and V
// projections (the QKV and output linears are separate Linear layers).
//
// q, k, v and the output y are [batch * seq, heads * head_dim], rows ordered
// batch-major, head h occupying columns [h * head_dim, (h + 1) * head_dim).
// For every (batch b, head h), with Q, K, V the seq x head_dim slices:
//   S = Q K^T / sqrt(head_dim),  S[i][j] = -inf for j > i (causal mask)
//   P = softmax over each row of S,  Y = P V.
// The slices are addressed in place with a row stride of heads * head_dim, so
// no head is copied out. Forward keeps P ([batch, heads, seq, seq]) for
// backward, which is, per (b, h):
//   dV = P^T dY,  dP = dY V^T,  dS = P * (dP - rowsum(dP * P)) / sqrt(head_dim)
//   dQ = dS K,    dK = dS^T Q.
// Masked entries have P = 0, hence dS = 0: the mask needs no separate step in
// backward. Layer conventions: linear.h (dq, dk, dv are input gradients,
// overwritten).
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "worker/train/tensor.h"

namespace sublet::train {

struct AttentionShape {
  int64_t batch = 0;
  int64_t seq = 0;
  int64_t heads = 0;  // must divide the width of q, k and v
};

absl::Status CausalAttentionForward(const AttentionShape& shape,
                                    const Tensor& q, const Tensor& k,
                                    const Tensor& v, Tensor* y, Tensor* probs);

absl::Status CausalAttentionBackward(const AttentionShape& shape,
                                     const Tensor& q, const Tensor& k,
                                     const Tensor& v, const Tensor& probs,
                                     const Tensor& dy, Tensor* dq, Tensor* dk,
                                     Tensor* dv);

}  // namespace sublet::train
