#include "worker/train/gpt.h"

#include <algorithm>
#include <string>

#include "common/status.h"
#include "worker/train/attention.h"
#include "worker/train/cross_entropy.h"
#include "worker/train/embedding.h"
#include "worker/train/gelu.h"

namespace sublet::train {
namespace {

void AddInto(const Tensor& a, Tensor* out) {
  for (int64_t i = 0; i < out->size(); ++i) out->data[i] += a.data[i];
}

// Columns [part * width, (part + 1) * width) of m.
Tensor Columns(const Tensor& m, int64_t part, int64_t width) {
  Tensor out = Tensor::Zeros({m.dim(0), width});
  for (int64_t r = 0; r < m.dim(0); ++r) {
    std::copy_n(&m.data[r * m.dim(1) + part * width], width, &out.data[r * width]);
  }
  return out;
}

// [a | b | c] column-wise.
Tensor Concat3(const Tensor& a, const Tensor& b, const Tensor& c) {
  const int64_t rows = a.dim(0), w = a.dim(1);
  Tensor out = Tensor::Zeros({rows, 3 * w});
  for (int64_t r = 0; r < rows; ++r) {
    float* o = &out.data[r * 3 * w];
    std::copy_n(&a.data[r * w], w, o);
    std::copy_n(&b.data[r * w], w, o + w);
    std::copy_n(&c.data[r * w], w, o + 2 * w);
  }
  return out;
}

absl::Status Ready(const GptModel::ReadyFn& ready, std::initializer_list<size_t> params) {
  if (!ready) return absl::OkStatus();
  for (size_t i : params) SUBLET_RETURN_IF_ERROR(ready(i));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<double> GptModel::Forward(const MicroBatch& mb) {
  const GptConfig& c = params_->config;
  const int64_t rows = mb.batch * mb.seq;
  if (mb.batch <= 0 || mb.seq <= 0 || mb.seq > c.max_seq ||
      static_cast<int64_t>(mb.tokens.size()) != rows ||
      static_cast<int64_t>(mb.targets.size()) != rows || rows % tp_->size() != 0) {
    return absl::InvalidArgumentError(
        "gpt: micro-batch of " + std::to_string(mb.batch) + " x " + std::to_string(mb.seq) +
        " does not fit max_seq " + std::to_string(c.max_seq) + " or split over " +
        std::to_string(tp_->size()) + " tensor ranks");
  }
  batch_ = mb.batch;
  seq_ = mb.seq;
  local_rows_ = rows / tp_->size();
  row_begin_ = local_rows_ * tp_->rank();
  tokens_.assign(mb.tokens.begin(), mb.tokens.end());
  targets_.assign(mb.targets.begin() + row_begin_, mb.targets.begin() + row_begin_ + local_rows_);

  // The embedding of every row is cheap; this rank keeps its own rows.
  Tensor emb;
  SUBLET_RETURN_IF_ERROR(EmbeddingForward(tokens_, seq_, V(params_->wte), V(params_->wpe), &emb));
  const int64_t w = c.width;
  Tensor x = Tensor::Zeros({local_rows_, w});
  std::copy_n(&emb.data[row_begin_ * w], local_rows_ * w, x.data.data());

  acts_.resize(params_->blocks.size());
  for (size_t l = 0; l < params_->blocks.size(); ++l) SUBLET_RETURN_IF_ERROR(BlockForward(l, &x));

  xf_in_ = std::move(x);
  SUBLET_RETURN_IF_ERROR(LayerNormForward(xf_in_, V(params_->lnf_g), V(params_->lnf_b), &xf_,
                                          &lnf_cache_));
  Tensor logits;
  SUBLET_RETURN_IF_ERROR(TiedHeadForward(xf_, V(params_->wte), &logits));
  double mean = 0;
  SUBLET_RETURN_IF_ERROR(CrossEntropyForward(logits, targets_, &mean, &probs_));
  return mean * static_cast<double>(local_rows_);
}

absl::Status GptModel::BlockForward(size_t l, Tensor* x) {
  const BlockParams& p = params_->blocks[l];
  BlockActivations& a = acts_[l];
  const int64_t heads = params_->config.heads / tp_->size();
  a.x = *x;
  SUBLET_RETURN_IF_ERROR(LayerNormForward(a.x, V(p.ln1_g), V(p.ln1_b), &a.ln1, &a.ln1_cache));
  Tensor qkv;
  SUBLET_RETURN_IF_ERROR(tp_->ColumnForward(a.ln1, V(p.wqkv), V(p.bqkv), &qkv, &a.ln1_all));
  const int64_t wt = qkv.dim(1) / 3;
  a.q = Columns(qkv, 0, wt);
  a.k = Columns(qkv, 1, wt);
  a.v = Columns(qkv, 2, wt);
  SUBLET_RETURN_IF_ERROR(
      CausalAttentionForward({batch_, seq_, heads}, a.q, a.k, a.v, &a.att, &a.probs));
  Tensor attn_out;
  SUBLET_RETURN_IF_ERROR(tp_->RowForward(a.att, V(p.wo), V(p.bo), &attn_out));
  a.x_mid = a.x;
  AddInto(attn_out, &a.x_mid);
  SUBLET_RETURN_IF_ERROR(LayerNormForward(a.x_mid, V(p.ln2_g), V(p.ln2_b), &a.ln2, &a.ln2_cache));
  SUBLET_RETURN_IF_ERROR(tp_->ColumnForward(a.ln2, V(p.w1), V(p.b1), &a.h, &a.ln2_all));
  SUBLET_RETURN_IF_ERROR(GeluForward(a.h, &a.hg));
  Tensor mlp_out;
  SUBLET_RETURN_IF_ERROR(tp_->RowForward(a.hg, V(p.w2), V(p.b2), &mlp_out));
  *x = a.x_mid;
  AddInto(mlp_out, x);
  return absl::OkStatus();
}

absl::Status GptModel::Backward(float loss_scale, const ReadyFn& ready) {
  if (acts_.empty() || probs_.size() == 0) {
    return absl::FailedPreconditionError("gpt: Backward without a Forward");
  }
  Tensor dlogits;
  SUBLET_RETURN_IF_ERROR(CrossEntropyBackward(probs_, targets_, &dlogits));
  // CrossEntropyBackward is the gradient of the mean over local rows.
  const float scale = loss_scale * static_cast<float>(local_rows_);
  for (float& g : dlogits.data) g *= scale;
  Tensor dxf, dx;
  SUBLET_RETURN_IF_ERROR(TiedHeadBackward(xf_, V(params_->wte), dlogits, &dxf, &G(params_->wte)));
  SUBLET_RETURN_IF_ERROR(LayerNormBackward(xf_in_, V(params_->lnf_g), lnf_cache_, dxf, &dx,
                                           &G(params_->lnf_g), &G(params_->lnf_b)));
  SUBLET_RETURN_IF_ERROR(Ready(ready, {params_->lnf_g, params_->lnf_b}));
  for (size_t l = params_->blocks.size(); l-- > 0;) {
    SUBLET_RETURN_IF_ERROR(BlockBackward(l, &dx, ready));
  }
  const int64_t w = params_->config.width;
  Tensor demb = Tensor::Zeros({batch_ * seq_, w});
  std::copy_n(dx.data.data(), local_rows_ * w, &demb.data[row_begin_ * w]);
  SUBLET_RETURN_IF_ERROR(
      EmbeddingBackward(tokens_, seq_, demb, &G(params_->wte), &G(params_->wpe)));
  return Ready(ready, {params_->wpe, params_->wte});
}

// On entry *dx is the gradient of the block's output; on return, of its input.
absl::Status GptModel::BlockBackward(size_t l, Tensor* dx, const ReadyFn& ready) {
  const BlockParams& p = params_->blocks[l];
  BlockActivations& a = acts_[l];
  const int64_t heads = params_->config.heads / tp_->size();
  Tensor dhg, dh, dln2, dxm;
  SUBLET_RETURN_IF_ERROR(tp_->RowBackward(a.hg, V(p.w2), *dx, &dhg, &G(p.w2), &G(p.b2)));
  SUBLET_RETURN_IF_ERROR(Ready(ready, {p.w2, p.b2}));
  SUBLET_RETURN_IF_ERROR(GeluBackward(a.h, dhg, &dh));
  SUBLET_RETURN_IF_ERROR(tp_->ColumnBackward(a.ln2_all, V(p.w1), dh, &dln2, &G(p.w1), &G(p.b1)));
  SUBLET_RETURN_IF_ERROR(Ready(ready, {p.w1, p.b1}));
  SUBLET_RETURN_IF_ERROR(
      LayerNormBackward(a.x_mid, V(p.ln2_g), a.ln2_cache, dln2, &dxm, &G(p.ln2_g), &G(p.ln2_b)));
  SUBLET_RETURN_IF_ERROR(Ready(ready, {p.ln2_g, p.ln2_b}));
  AddInto(dxm, dx);  // now the gradient of x_mid

  Tensor datt, dq, dk, dv, dln1, dxl;
  SUBLET_RETURN_IF_ERROR(tp_->RowBackward(a.att, V(p.wo), *dx, &datt, &G(p.wo), &G(p.bo)));
  SUBLET_RETURN_IF_ERROR(Ready(ready, {p.wo, p.bo}));
  SUBLET_RETURN_IF_ERROR(CausalAttentionBackward({batch_, seq_, heads}, a.q, a.k, a.v, a.probs,
                                                 datt, &dq, &dk, &dv));
  const Tensor dqkv = Concat3(dq, dk, dv);
  SUBLET_RETURN_IF_ERROR(
      tp_->ColumnBackward(a.ln1_all, V(p.wqkv), dqkv, &dln1, &G(p.wqkv), &G(p.bqkv)));
  SUBLET_RETURN_IF_ERROR(Ready(ready, {p.wqkv, p.bqkv}));
  SUBLET_RETURN_IF_ERROR(
      LayerNormBackward(a.x, V(p.ln1_g), a.ln1_cache, dln1, &dxl, &G(p.ln1_g), &G(p.ln1_b)));
  SUBLET_RETURN_IF_ERROR(Ready(ready, {p.ln1_g, p.ln1_b}));
  AddInto(dxl, dx);
  return absl::OkStatus();
}

}  // namespace sublet::train
