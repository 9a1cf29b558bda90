// A GPT-style model's configuration and parameters, as one tensor-parallel
// rank holds them.
//
// Parameters, in forward order (w = width, f = 4w, S = max_seq, V = vocab):
//   wte [V, w], wpe [S, w]                               replicated
//   per block l, prefix "h<l>.":
//     ln1.g, ln1.b [w]                                   replicated
//     attn.wqkv [w, 3, w]  split on dim 2 (column parallel: every rank gets
//                          the Q, K and V columns of its heads; locally a
//                          [w, 3*w/tp] matrix, Q | K | V)
//     attn.bqkv [3, w]     split on dim 1
//     attn.wo [w, w]       split on dim 0 (row parallel), attn.bo [w] replicated
//     ln2.g, ln2.b [w]                                   replicated
//     mlp.w1 [w, f] split 1, mlp.b1 [f] split 0          (column parallel)
//     mlp.w2 [f, w] split 0, mlp.b2 [w] replicated       (row parallel)
//   lnf.g, lnf.b [w]                                     replicated
// The output head is tied to wte. Split dimensions are cut into tp equal
// contiguous ranges (the checkpoint library's convention), so heads and the
// MLP width must divide by tp.
//
// Initialisation is deterministic and independent of the topology: each
// tensor is drawn whole from a generator seeded by (seed, name), N(0, 0.02)
// (residual projections wo and w2: 0.02 / sqrt(2 * layers)), biases 0, LN
// gains 1; each rank then keeps its shard.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/train/tensor.h"

namespace sublet::train {

struct GptConfig {
  int64_t vocab = 256;  // byte-level tokens
  int64_t max_seq = 64;
  int64_t width = 32;
  int64_t heads = 4;
  int64_t layers = 2;
  int64_t mlp() const { return 4 * width; }
};

// "tiny" (trains in seconds on one core), "small" (GEMM-bound, ~3.3M
// parameters) or "medium" (~101M parameters, 1.2 GB of state with AdamW's
// moments: the checkpoint and reclaim benches' size); InvalidArgument
// otherwise.
absl::StatusOr<GptConfig> GptPreset(const std::string& name);

// InvalidArgument unless heads divide width and heads and the MLP width
// divide by tp.
absl::Status CheckConfig(const GptConfig& config, int tp);

struct Param {
  std::string name;
  std::vector<int64_t> global_shape;
  int split_dim = -1;  // -1: replicated over the tensor group
  bool decay = false;  // AdamW weight decay (matrices only)
  Tensor value;        // this rank's shard, as a matrix or vector
  Tensor grad;         // same shape as value
};

// Indices into GptParams::params of one block's tensors.
struct BlockParams {
  size_t ln1_g, ln1_b, wqkv, bqkv, wo, bo, ln2_g, ln2_b, w1, b1, w2, b2;
};

struct GptParams {
  GptConfig config;
  int tp = 1;
  int tp_rank = 0;
  std::vector<Param> params;
  size_t wte = 0, wpe = 0, lnf_g = 0, lnf_b = 0;
  std::vector<BlockParams> blocks;

  // Parameter indices in the order backward finishes their gradients.
  std::vector<size_t> BackwardOrder() const;
  void ZeroGrads();
  int64_t LocalCount() const;   // elements this rank holds
  int64_t GlobalCount() const;  // elements of the whole model
};

// The shard `tp_rank` of every parameter, initialised from `seed`.
absl::StatusOr<GptParams> InitGptParams(const GptConfig& config, int tp, int tp_rank,
                                        uint64_t seed);

// Rank `shard`'s part of a row-major tensor of `shape` cut on `split_dim`
// into `parts` equal ranges (the whole tensor when split_dim is -1).
std::vector<float> ShardOf(const std::vector<float>& global, const std::vector<int64_t>& shape,
                           int split_dim, int parts, int shard);

}  // namespace sublet::train
