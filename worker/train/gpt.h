// A GPT-style language model on the host, assembled from the layers in
// worker/train/: token + position embeddings, pre-LayerNorm blocks
//   x = x + attn_out(attention(qkv(ln1(x))))
//   x = x + mlp_w2(gelu(mlp_w1(ln2(x))))
// a final LayerNorm, the output head tied to wte and cross-entropy.
//
// Tensor parallelism (tensor_parallel.h): the residual stream is cut by rows
// over the tensor group (sequence parallel), QKV and mlp_w1 are column
// parallel, attn_out and mlp_w2 row parallel, attention runs on the heads of
// this rank's Q/K/V columns over all rows. The embedding and the head work on
// this rank's rows, so gradients of replicated parameters are partial sums
// that the caller adds up over the tensor group.
//
// Loss scaling: Forward returns the SUM of the token losses of this rank's
// rows; Backward computes the gradient of that sum times `loss_scale`
// (1 / tokens of the global batch, so summing over micro-batches, tensor and
// data ranks gives the gradient of the global mean). Gradients accumulate.
//
// Not thread-safe; a model keeps the activations of its last Forward.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/train/gpt_params.h"
#include "worker/train/layer_norm.h"
#include "worker/train/tensor_parallel.h"

namespace sublet::train {

struct MicroBatch {
  std::span<const int32_t> tokens;   // batch * seq, batch-major
  std::span<const int32_t> targets;  // the next token of each position
  int64_t batch = 0;
  int64_t seq = 0;
};

class GptModel {
 public:
  // Both must outlive the model.
  GptModel(GptParams* params, TensorParallel* tp) : params_(params), tp_(tp) {}

  // The sum of the cross-entropy over this rank's rows of the micro-batch.
  absl::StatusOr<double> Forward(const MicroBatch& batch);

  // Backward of the last Forward. `on_ready(i)` runs as soon as parameter
  // i's gradient has this micro-batch's contribution (in the order of
  // GptParams::BackwardOrder); a failure stops the pass.
  using ReadyFn = std::function<absl::Status(size_t)>;
  absl::Status Backward(float loss_scale, const ReadyFn& on_ready = nullptr);

  // Rows of a micro-batch this rank holds between blocks.
  int64_t LocalRows() const { return local_rows_; }

 private:
  struct BlockActivations {
    Tensor x, ln1, ln1_all, q, k, v, probs, att, x_mid, ln2, ln2_all, h, hg;
    LayerNormCache ln1_cache, ln2_cache;
  };
  absl::Status BlockForward(size_t l, Tensor* x);
  absl::Status BlockBackward(size_t l, Tensor* dx, const ReadyFn& ready);
  Tensor& V(size_t i) { return params_->params[i].value; }
  Tensor& G(size_t i) { return params_->params[i].grad; }

  GptParams* params_;
  TensorParallel* tp_;
  // Activations of the last Forward.
  std::vector<int32_t> tokens_, targets_;
  int64_t batch_ = 0, seq_ = 0, local_rows_ = 0, row_begin_ = 0;
  std::vector<BlockActivations> acts_;
  Tensor xf_in_, xf_, probs_;
  LayerNormCache lnf_cache_;
};

}  // namespace sublet::train
