// DeviceGptModel on CUDA. The model mirrors gpt.cc step for step with
// tp = 1; the layer comments there apply. Parameters, gradients and the
// AdamW moments are each one flat device array, the tensors at the offsets
// of GptParams::params, so the gradient norm and the zeroing are one launch.
#include "worker/train/cuda/device_gpt.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "worker/train/cuda/device_ops.h"
#include "worker/train/layer_norm.h"

namespace sublet::train::cuda {

absl::StatusOr<int> CudaDeviceCount() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    return absl::FailedPreconditionError(
        absl::StrCat("no CUDA device: cudaGetDeviceCount: ", cudaGetErrorString(e)));
  }
  if (n == 0) return absl::FailedPreconditionError("no CUDA device: cudaGetDeviceCount found 0");
  return n;
}

namespace {

struct Slot {
  int64_t offset, size;
  bool decay;
};

// Activations of one block kept for backward (gpt.h's BlockActivations; q, k,
// v and probs head-major).
struct BlockActs {
  DeviceArray<float> x, ln1, ln1_mean, ln1_rstd, q, k, v, probs, att, x_mid, ln2, ln2_mean,
      ln2_rstd, h, hg;
};

absl::Status CheckBatch(const GptConfig& c, const MicroBatch& mb) {
  const int64_t rows = mb.batch * mb.seq;
  if (mb.batch <= 0 || mb.seq <= 0 || mb.seq > c.max_seq ||
      static_cast<int64_t>(mb.tokens.size()) != rows ||
      static_cast<int64_t>(mb.targets.size()) != rows) {
    return absl::InvalidArgumentError(absl::StrCat("gpt (cuda): micro-batch of ", mb.batch, " x ",
                                                   mb.seq, " does not fit max_seq ", c.max_seq));
  }
  for (std::span<const int32_t> ids : {mb.tokens, mb.targets}) {
    for (int32_t id : ids) {
      if (id < 0 || id >= c.vocab) {
        return absl::InvalidArgumentError(
            absl::StrCat("gpt (cuda): token ", id, " outside vocab ", c.vocab));
      }
    }
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status ToDevice(DeviceArray<T>* dst, int64_t offset, const T* src, int64_t n,
                      cudaStream_t s) {
  return CudaCheck("upload", cudaMemcpyAsync(dst->get() + offset, src, sizeof(T) * n,
                                             cudaMemcpyHostToDevice, s));
}

}  // namespace

struct DeviceGptModel::Impl {
  GptParams layout;  // indices and shapes; values and grads are not kept here
  int device = 0;
  Device dev;
  std::vector<Slot> slots;
  DeviceArray<float> values, grads, m, v;
  DeviceArray<double> norm;  // one element: the squared gradient norm

  // Activations of the last Forward, sized for `rows`.
  int64_t batch = 0, seq = 0, rows = 0;
  bool have_forward = false;
  std::vector<BlockActs> acts;
  DeviceArray<int32_t> tokens, targets;
  DeviceArray<float> xf_in, xf, lnf_mean, lnf_rstd, logits, probs;
  DeviceArray<double> row_loss;
  // Scratch: forward and backward temporaries.
  DeviceArray<float> tmp, tmp2, big, qkv, heads, dq, dk, dv, ds, dx;

  ~Impl() {
    if (dev.blas != nullptr) cublasDestroy(dev.blas);
    if (dev.stream != nullptr) cudaStreamDestroy(dev.stream);
  }

  const float* V(size_t i) const { return values.get() + slots[i].offset; }
  float* G(size_t i) const { return grads.get() + slots[i].offset; }
  int64_t W() const { return layout.config.width; }
  HeadLayout Heads() const {
    const GptConfig& c = layout.config;
    return {batch, seq, c.heads, c.width / c.heads};
  }

  absl::Status Upload(const GptParams& params);
  absl::Status Resize(int64_t new_batch, int64_t new_seq);
  absl::Status BlockForward(size_t l, float* out);
  absl::Status BlockBackward(size_t l);
};

absl::Status DeviceGptModel::Impl::Upload(const GptParams& params) {
  int64_t at = 0;
  for (const Param& p : params.params) {
    slots.push_back({at, p.value.size(), p.decay});
    at += p.value.size();
  }
  for (auto* a : {&values, &grads, &m, &v}) SUBLET_RETURN_IF_ERROR(a->Allocate(at));
  SUBLET_RETURN_IF_ERROR(norm.Allocate(1));
  for (size_t i = 0; i < params.params.size(); ++i) {
    SUBLET_RETURN_IF_ERROR(ToDevice(&values, slots[i].offset, params.params[i].value.data.data(),
                                    slots[i].size, dev.stream));
  }
  return CudaCheck("upload", cudaStreamSynchronize(dev.stream));
}

absl::Status DeviceGptModel::Impl::Resize(int64_t new_batch, int64_t new_seq) {
  if (batch == new_batch && seq == new_seq) return absl::OkStatus();
  batch = seq = rows = 0;  // until every buffer has its new size
  const GptConfig& c = layout.config;
  const int64_t r = new_batch * new_seq, rw = r * c.width, f = r * c.mlp();
  const int64_t pp = new_batch * c.heads * new_seq * new_seq;
  acts.resize(layout.blocks.size());
  for (BlockActs& a : acts) {
    for (auto* t : {&a.x, &a.ln1, &a.q, &a.k, &a.v, &a.att, &a.x_mid, &a.ln2}) {
      SUBLET_RETURN_IF_ERROR(t->Allocate(rw));
    }
    for (auto* t : {&a.ln1_mean, &a.ln1_rstd, &a.ln2_mean, &a.ln2_rstd}) {
      SUBLET_RETURN_IF_ERROR(t->Allocate(r));
    }
    for (auto* t : {&a.h, &a.hg}) SUBLET_RETURN_IF_ERROR(t->Allocate(f));
    SUBLET_RETURN_IF_ERROR(a.probs.Allocate(pp));
  }
  for (auto* t : {&xf_in, &xf, &tmp, &tmp2, &heads, &dq, &dk, &dv, &dx}) {
    SUBLET_RETURN_IF_ERROR(t->Allocate(rw));
  }
  for (auto* t : {&lnf_mean, &lnf_rstd}) SUBLET_RETURN_IF_ERROR(t->Allocate(r));
  for (auto* t : {&logits, &probs}) SUBLET_RETURN_IF_ERROR(t->Allocate(r * c.vocab));
  SUBLET_RETURN_IF_ERROR(big.Allocate(f));
  SUBLET_RETURN_IF_ERROR(qkv.Allocate(3 * rw));
  SUBLET_RETURN_IF_ERROR(ds.Allocate(pp));
  SUBLET_RETURN_IF_ERROR(row_loss.Allocate(r));
  SUBLET_RETURN_IF_ERROR(tokens.Allocate(r));
  SUBLET_RETURN_IF_ERROR(targets.Allocate(r));
  batch = new_batch;
  seq = new_seq;
  rows = r;
  return absl::OkStatus();
}

DeviceGptModel::DeviceGptModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DeviceGptModel::~DeviceGptModel() = default;

absl::StatusOr<std::unique_ptr<DeviceGptModel>> DeviceGptModel::Create(const GptParams& params,
                                                                       int device) {
  SUBLET_ASSIGN_OR_RETURN(int count, CudaDeviceCount());
  if (device < 0 || device >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("gpt (cuda): device ", device, " outside the ", count, " present"));
  }
  if (params.tp != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("gpt (cuda): one device holds the whole model; tp is ", params.tp));
  }
  SUBLET_RETURN_IF_ERROR(CheckConfig(params.config, 1));
  auto impl = std::make_unique<Impl>();
  impl->device = device;
  impl->layout.config = params.config;
  impl->layout.wte = params.wte;
  impl->layout.wpe = params.wpe;
  impl->layout.lnf_g = params.lnf_g;
  impl->layout.lnf_b = params.lnf_b;
  impl->layout.blocks = params.blocks;
  SUBLET_RETURN_IF_ERROR(CudaCheck("cudaSetDevice", cudaSetDevice(device)));
  SUBLET_RETURN_IF_ERROR(CudaCheck("cudaStreamCreate", cudaStreamCreate(&impl->dev.stream)));
  SUBLET_RETURN_IF_ERROR(CublasCheck("cublasCreate", cublasCreate(&impl->dev.blas)));
  SUBLET_RETURN_IF_ERROR(
      CublasCheck("cublasSetStream", cublasSetStream(impl->dev.blas, impl->dev.stream)));
  // Full fp32 GEMMs, as on the host: the default math mode, no TF32.
  SUBLET_RETURN_IF_ERROR(CublasCheck(
      "cublasSetMathMode", cublasSetMathMode(impl->dev.blas, CUBLAS_DEFAULT_MATH)));
  SUBLET_RETURN_IF_ERROR(impl->Upload(params));
  return std::unique_ptr<DeviceGptModel>(new DeviceGptModel(std::move(impl)));
}

absl::StatusOr<double> DeviceGptModel::Forward(const MicroBatch& mb) {
  Impl& s = *impl_;
  const GptConfig& c = s.layout.config;
  SUBLET_RETURN_IF_ERROR(CheckBatch(c, mb));
  SUBLET_RETURN_IF_ERROR(CudaCheck("cudaSetDevice", cudaSetDevice(s.device)));
  s.have_forward = false;
  SUBLET_RETURN_IF_ERROR(s.Resize(mb.batch, mb.seq));
  const cudaStream_t st = s.dev.stream;
  SUBLET_RETURN_IF_ERROR(ToDevice(&s.tokens, 0, mb.tokens.data(), s.rows, st));
  SUBLET_RETURN_IF_ERROR(ToDevice(&s.targets, 0, mb.targets.data(), s.rows, st));
  SUBLET_RETURN_IF_ERROR(
      CudaCheck("embedding", EmbeddingForward(s.tokens.get(), s.V(s.layout.wte), s.V(s.layout.wpe),
                                              s.acts[0].x.get(), s.rows, s.seq, c.width, st)));
  for (size_t l = 0; l < s.acts.size(); ++l) {
    float* out = l + 1 < s.acts.size() ? s.acts[l + 1].x.get() : s.xf_in.get();
    SUBLET_RETURN_IF_ERROR(s.BlockForward(l, out));
  }
  SUBLET_RETURN_IF_ERROR(CudaCheck(
      "layer norm", LayerNormForward(s.xf_in.get(), s.V(s.layout.lnf_g), s.V(s.layout.lnf_b),
                                     kLayerNormEpsilon, s.xf.get(), s.lnf_mean.get(),
                                     s.lnf_rstd.get(), s.rows, c.width, st)));
  SUBLET_RETURN_IF_ERROR(Gemm(s.dev, Trans::kNo, Trans::kYes, s.rows, c.vocab, c.width, 1.0f,
                              s.xf.get(), c.width, s.V(s.layout.wte), c.width, 0.0f,
                              s.logits.get(), c.vocab));
  SUBLET_RETURN_IF_ERROR(CudaCheck(
      "cross entropy", CrossEntropyForward(s.logits.get(), s.targets.get(), s.probs.get(),
                                           s.row_loss.get(), s.rows, c.vocab, st)));
  std::vector<double> losses(static_cast<size_t>(s.rows));
  SUBLET_RETURN_IF_ERROR(CudaCheck(
      "download loss", cudaMemcpyAsync(losses.data(), s.row_loss.get(), sizeof(double) * s.rows,
                                       cudaMemcpyDeviceToHost, st)));
  SUBLET_RETURN_IF_ERROR(CudaCheck("forward", cudaStreamSynchronize(st)));
  double total = 0.0;  // in row order, as cross_entropy.cc
  for (double x : losses) total += x;
  s.have_forward = true;
  return total / s.rows * static_cast<double>(s.rows);
}

absl::Status DeviceGptModel::Impl::BlockForward(size_t l, float* out) {
  const BlockParams& p = layout.blocks[l];
  BlockActs& a = acts[l];
  const int64_t w = W(), f = layout.config.mlp();
  const HeadLayout hl = Heads();
  const cudaStream_t st = dev.stream;
  SUBLET_RETURN_IF_ERROR(CudaCheck(
      "layer norm", LayerNormForward(a.x.get(), V(p.ln1_g), V(p.ln1_b), kLayerNormEpsilon,
                                     a.ln1.get(), a.ln1_mean.get(), a.ln1_rstd.get(), rows, w, st)));
  SUBLET_RETURN_IF_ERROR(
      LinearForward(dev, a.ln1.get(), V(p.wqkv), V(p.bqkv), rows, w, 3 * w, qkv.get()));
  float* qkv_heads[3] = {a.q.get(), a.k.get(), a.v.get()};
  for (int64_t part = 0; part < 3; ++part) {
    SUBLET_RETURN_IF_ERROR(CudaCheck(
        "split heads", RowsToHeads(qkv.get(), 3 * w, part * w, hl, qkv_heads[part], st)));
  }
  SUBLET_RETURN_IF_ERROR(
      AttentionForward(dev, hl, a.q.get(), a.k.get(), a.v.get(), a.probs.get(), heads.get()));
  SUBLET_RETURN_IF_ERROR(
      CudaCheck("merge heads", HeadsToRows(heads.get(), hl, a.att.get(), w, 0, st)));
  SUBLET_RETURN_IF_ERROR(LinearForward(dev, a.att.get(), V(p.wo), V(p.bo), rows, w, w, tmp.get()));
  SUBLET_RETURN_IF_ERROR(CudaCheck("residual", cudaMemcpyAsync(a.x_mid.get(), a.x.get(),
                                                               sizeof(float) * rows * w,
                                                               cudaMemcpyDeviceToDevice, st)));
  SUBLET_RETURN_IF_ERROR(CudaCheck("residual", AddInto(tmp.get(), a.x_mid.get(), rows * w, st)));
  SUBLET_RETURN_IF_ERROR(CudaCheck(
      "layer norm", LayerNormForward(a.x_mid.get(), V(p.ln2_g), V(p.ln2_b), kLayerNormEpsilon,
                                     a.ln2.get(), a.ln2_mean.get(), a.ln2_rstd.get(), rows, w, st)));
  SUBLET_RETURN_IF_ERROR(LinearForward(dev, a.ln2.get(), V(p.w1), V(p.b1), rows, w, f, a.h.get()));
  SUBLET_RETURN_IF_ERROR(CudaCheck("gelu", GeluForward(a.h.get(), a.hg.get(), rows * f, st)));
  SUBLET_RETURN_IF_ERROR(LinearForward(dev, a.hg.get(), V(p.w2), V(p.b2), rows, f, w, tmp.get()));
  SUBLET_RETURN_IF_ERROR(CudaCheck("residual", cudaMemcpyAsync(out, a.x_mid.get(),
                                                               sizeof(float) * rows * w,
                                                               cudaMemcpyDeviceToDevice, st)));
  return CudaCheck("residual", AddInto(tmp.get(), out, rows * w, st));
}

absl::Status DeviceGptModel::Backward(float loss_scale) {
  Impl& s = *impl_;
  if (!s.have_forward) return absl::FailedPreconditionError("gpt (cuda): Backward without a Forward");
  SUBLET_RETURN_IF_ERROR(CudaCheck("cudaSetDevice", cudaSetDevice(s.device)));
  const GptConfig& c = s.layout.config;
  const cudaStream_t st = s.dev.stream;
  const size_t wte = s.layout.wte;
  // The logits' gradient overwrites the logits, which backward does not need.
  float* dlogits = s.logits.get();
  const float scale = loss_scale * static_cast<float>(s.rows);  // gpt.cc: mean -> sum
  SUBLET_RETURN_IF_ERROR(CudaCheck(
      "cross entropy", CrossEntropyBackward(s.probs.get(), s.targets.get(), dlogits, s.rows,
                                            c.vocab, scale, st)));
  SUBLET_RETURN_IF_ERROR(Gemm(s.dev, Trans::kNo, Trans::kNo, s.rows, c.width, c.vocab, 1.0f,
                              dlogits, c.vocab, s.V(wte), c.width, 0.0f, s.tmp.get(), c.width));
  SUBLET_RETURN_IF_ERROR(Gemm(s.dev, Trans::kYes, Trans::kNo, c.vocab, c.width, s.rows, 1.0f,
                              dlogits, c.vocab, s.xf.get(), c.width, 1.0f, s.G(wte), c.width));
  SUBLET_RETURN_IF_ERROR(CudaCheck(
      "layer norm", LayerNormBackward(s.xf_in.get(), s.tmp.get(), s.V(s.layout.lnf_g),
                                      s.lnf_mean.get(), s.lnf_rstd.get(), s.dx.get(),
                                      s.G(s.layout.lnf_g), s.G(s.layout.lnf_b), s.rows, c.width,
                                      st)));
  for (size_t l = s.acts.size(); l-- > 0;) SUBLET_RETURN_IF_ERROR(s.BlockBackward(l));
  SUBLET_RETURN_IF_ERROR(CudaCheck(
      "embedding", EmbeddingBackward(s.tokens.get(), s.dx.get(), s.G(wte), s.G(s.layout.wpe),
                                     s.rows, s.seq, c.width, st)));
  return CudaCheck("backward", cudaStreamSynchronize(st));
}

// On entry dx holds the gradient of block l's output; on return, of its input.
absl::Status DeviceGptModel::Impl::BlockBackward(size_t l) {
  const BlockParams& p = layout.blocks[l];
  BlockActs& a = acts[l];
  const int64_t w = W(), f = layout.config.mlp();
  const HeadLayout hl = Heads();
  const cudaStream_t st = dev.stream;
  SUBLET_RETURN_IF_ERROR(LinearBackward(dev, a.hg.get(), V(p.w2), dx.get(), rows, f, w, big.get(),
                                        G(p.w2), G(p.b2)));
  SUBLET_RETURN_IF_ERROR(CudaCheck("gelu", GeluBackward(a.h.get(), big.get(), big.get(),
                                                        rows * f, st)));
  SUBLET_RETURN_IF_ERROR(LinearBackward(dev, a.ln2.get(), V(p.w1), big.get(), rows, w, f,
                                        tmp.get(), G(p.w1), G(p.b1)));
  SUBLET_RETURN_IF_ERROR(CudaCheck(
      "layer norm", LayerNormBackward(a.x_mid.get(), tmp.get(), V(p.ln2_g), a.ln2_mean.get(),
                                      a.ln2_rstd.get(), tmp2.get(), G(p.ln2_g), G(p.ln2_b), rows,
                                      w, st)));
  SUBLET_RETURN_IF_ERROR(CudaCheck("residual", AddInto(tmp2.get(), dx.get(), rows * w, st)));

  SUBLET_RETURN_IF_ERROR(LinearBackward(dev, a.att.get(), V(p.wo), dx.get(), rows, w, w,
                                        tmp.get(), G(p.wo), G(p.bo)));
  SUBLET_RETURN_IF_ERROR(
      CudaCheck("split heads", RowsToHeads(tmp.get(), w, 0, hl, heads.get(), st)));
  SUBLET_RETURN_IF_ERROR(AttentionBackward(dev, hl, a.q.get(), a.k.get(), a.v.get(),
                                           a.probs.get(), heads.get(), ds.get(), dq.get(),
                                           dk.get(), dv.get()));
  const float* d_heads[3] = {dq.get(), dk.get(), dv.get()};
  for (int64_t part = 0; part < 3; ++part) {
    SUBLET_RETURN_IF_ERROR(CudaCheck(
        "merge heads", HeadsToRows(d_heads[part], hl, qkv.get(), 3 * w, part * w, st)));
  }
  SUBLET_RETURN_IF_ERROR(LinearBackward(dev, a.ln1.get(), V(p.wqkv), qkv.get(), rows, w, 3 * w,
                                        tmp.get(), G(p.wqkv), G(p.bqkv)));
  SUBLET_RETURN_IF_ERROR(CudaCheck(
      "layer norm", LayerNormBackward(a.x.get(), tmp.get(), V(p.ln1_g), a.ln1_mean.get(),
                                      a.ln1_rstd.get(), tmp2.get(), G(p.ln1_g), G(p.ln1_b), rows,
                                      w, st)));
  return CudaCheck("residual", AddInto(tmp2.get(), dx.get(), rows * w, st));
}

absl::StatusOr<float> DeviceGptModel::Step(const AdamWOptions& options, int64_t t, float lr,
                                           double max_norm) {
  Impl& s = *impl_;
  SUBLET_RETURN_IF_ERROR(CudaCheck("cudaSetDevice", cudaSetDevice(s.device)));
  const cudaStream_t st = s.dev.stream;
  const int64_t n = s.grads.size();
  SUBLET_RETURN_IF_ERROR(
      CudaCheck("grad norm", cudaMemsetAsync(s.norm.get(), 0, sizeof(double), st)));
  SUBLET_RETURN_IF_ERROR(CudaCheck("grad norm", SumSquares(s.grads.get(), n, s.norm.get(), st)));
  double sq = 0.0;
  SUBLET_RETURN_IF_ERROR(CudaCheck(
      "grad norm", cudaMemcpyAsync(&sq, s.norm.get(), sizeof(double), cudaMemcpyDeviceToHost, st)));
  SUBLET_RETURN_IF_ERROR(CudaCheck("grad norm", cudaStreamSynchronize(st)));
  const float clip = ClipFactor(sq, max_norm);
  if (clip != 1.0f) SUBLET_RETURN_IF_ERROR(CudaCheck("clip", Scale(s.grads.get(), n, clip, st)));
  for (const Slot& slot : s.slots) {
    SUBLET_RETURN_IF_ERROR(CudaCheck(
        "adamw", AdamW(AdamWScalarsAt(options, t, lr, slot.decay), s.grads.get() + slot.offset,
                       s.m.get() + slot.offset, s.v.get() + slot.offset,
                       s.values.get() + slot.offset, slot.size, st)));
  }
  SUBLET_RETURN_IF_ERROR(
      CudaCheck("zero grads", cudaMemsetAsync(s.grads.get(), 0, sizeof(float) * n, st)));
  SUBLET_RETURN_IF_ERROR(CudaCheck("step", cudaStreamSynchronize(st)));
  return clip;
}

absl::Status DeviceGptModel::Download(GptParams* params) const {
  const Impl& s = *impl_;
  if (params->params.size() != s.slots.size()) {
    return absl::InvalidArgumentError("gpt (cuda): Download into parameters of another layout");
  }
  SUBLET_RETURN_IF_ERROR(CudaCheck("cudaSetDevice", cudaSetDevice(s.device)));
  for (size_t i = 0; i < s.slots.size(); ++i) {
    Param& p = params->params[i];
    const Slot& slot = s.slots[i];
    if (p.value.size() != slot.size || p.grad.size() != slot.size) {
      return absl::InvalidArgumentError(absl::StrCat("gpt (cuda): Download: ", p.name,
                                                     " has another size"));
    }
    const size_t bytes = sizeof(float) * slot.size;
    SUBLET_RETURN_IF_ERROR(CudaCheck("download", cudaMemcpyAsync(p.value.data.data(),
                                                                 s.values.get() + slot.offset,
                                                                 bytes, cudaMemcpyDeviceToHost,
                                                                 s.dev.stream)));
    SUBLET_RETURN_IF_ERROR(CudaCheck("download", cudaMemcpyAsync(p.grad.data.data(),
                                                                 s.grads.get() + slot.offset,
                                                                 bytes, cudaMemcpyDeviceToHost,
                                                                 s.dev.stream)));
  }
  return CudaCheck("download", cudaStreamSynchronize(s.dev.stream));
}

}  // namespace sublet::train::cuda
