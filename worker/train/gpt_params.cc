#include "worker/train/gpt_params.h"

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace sublet::train {
namespace {

int64_t Product(const std::vector<int64_t>& shape, size_t begin, size_t end) {
  int64_t n = 1;
  for (size_t i = begin; i < end; ++i) n *= shape[i];
  return n;
}

// FNV-1a of the name mixed with the seed: one generator per tensor, so a
// tensor's values depend on nothing but (seed, name).
uint64_t TensorSeed(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

enum class Init { kZero, kOne, kNormal };

struct Builder {
  GptParams* out;
  uint64_t seed;

  size_t Add(const std::string& name, std::vector<int64_t> shape, int split_dim, Init init,
             float stddev = 0.02f) {
    Param p;
    p.name = name;
    p.global_shape = shape;
    p.split_dim = split_dim;
    p.decay = shape.size() >= 2;
    std::vector<float> global(static_cast<size_t>(Product(shape, 0, shape.size())),
                              init == Init::kOne ? 1.0f : 0.0f);
    if (init == Init::kNormal) {
      std::mt19937_64 rng(TensorSeed(seed, name));
      std::normal_distribution<float> dist(0.0f, stddev);
      for (float& v : global) v = dist(rng);
    }
    p.value.data = ShardOf(global, shape, split_dim, out->tp, out->tp_rank);
    p.value.shape = LocalMatrixShape(shape, split_dim);
    p.grad = Tensor::Zeros(p.value.shape);
    out->params.push_back(std::move(p));
    return out->params.size() - 1;
  }

  // Vectors stay vectors; higher ranks become [first dim, the rest] with the
  // split applied, e.g. wqkv [w, 3, w] -> [w, 3 * w / tp].
  std::vector<int64_t> LocalMatrixShape(std::vector<int64_t> shape, int split_dim) const {
    if (split_dim >= 0) shape[split_dim] /= out->tp;
    if (shape.size() == 1) return shape;
    return {shape[0], Product(shape, 1, shape.size())};
  }
};

}  // namespace

absl::StatusOr<GptConfig> GptPreset(const std::string& name) {
  GptConfig c;
  if (name == "tiny") return c;  // the defaults: ~36k parameters
  if (name == "small") {
    c.max_seq = 128;
    c.width = 256;
    c.heads = 8;
    c.layers = 4;
    return c;
  }
  if (name == "medium") {  // ~101M parameters: value + AdamW moments = 1.2 GB
    c.max_seq = 128;
    c.width = 1024;
    c.heads = 16;
    c.layers = 8;
    return c;
  }
  return absl::InvalidArgumentError(absl::StrCat("--model: unknown preset '", name,
                                                 "'; expected tiny, small or medium"));
}

absl::Status CheckConfig(const GptConfig& c, int tp) {
  if (c.vocab <= 0 || c.max_seq <= 0 || c.width <= 0 || c.heads <= 0 || c.layers <= 0) {
    return absl::InvalidArgumentError("model: every size must be positive");
  }
  if (c.width % c.heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("model: ", c.heads,
                                                   " heads do not divide width ", c.width));
  }
  if (tp < 1 || c.heads % tp != 0 || c.mlp() % tp != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tp: ", tp, " does not divide the model's ", c.heads, " heads"));
  }
  return absl::OkStatus();
}

std::vector<float> ShardOf(const std::vector<float>& global, const std::vector<int64_t>& shape,
                           int split_dim, int parts, int shard) {
  if (split_dim < 0) return global;
  const size_t d = static_cast<size_t>(split_dim);
  const int64_t outer = Product(shape, 0, d), inner = Product(shape, d + 1, shape.size());
  const int64_t dim = shape[d], begin = dim * shard / parts, end = dim * (shard + 1) / parts;
  std::vector<float> out;
  out.reserve(static_cast<size_t>(outer * (end - begin) * inner));
  for (int64_t o = 0; o < outer; ++o) {
    const float* row = global.data() + (o * dim + begin) * inner;
    out.insert(out.end(), row, row + (end - begin) * inner);
  }
  return out;
}

absl::StatusOr<GptParams> InitGptParams(const GptConfig& c, int tp, int tp_rank, uint64_t seed) {
  SUBLET_RETURN_IF_ERROR(CheckConfig(c, tp));
  GptParams out;
  out.config = c;
  out.tp = tp;
  out.tp_rank = tp_rank;
  Builder b{&out, seed};
  const int64_t w = c.width, f = c.mlp();
  const float residual = 0.02f / std::sqrt(2.0f * static_cast<float>(c.layers));
  out.wte = b.Add("wte", {c.vocab, w}, -1, Init::kNormal);
  out.wpe = b.Add("wpe", {c.max_seq, w}, -1, Init::kNormal, 0.01f);
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string h = absl::StrCat("h", l, ".");
    BlockParams p;
    p.ln1_g = b.Add(h + "ln1.g", {w}, -1, Init::kOne);
    p.ln1_b = b.Add(h + "ln1.b", {w}, -1, Init::kZero);
    p.wqkv = b.Add(h + "attn.wqkv", {w, 3, w}, 2, Init::kNormal);
    p.bqkv = b.Add(h + "attn.bqkv", {3, w}, 1, Init::kZero);
    p.wo = b.Add(h + "attn.wo", {w, w}, 0, Init::kNormal, residual);
    p.bo = b.Add(h + "attn.bo", {w}, -1, Init::kZero);
    p.ln2_g = b.Add(h + "ln2.g", {w}, -1, Init::kOne);
    p.ln2_b = b.Add(h + "ln2.b", {w}, -1, Init::kZero);
    p.w1 = b.Add(h + "mlp.w1", {w, f}, 1, Init::kNormal);
    p.b1 = b.Add(h + "mlp.b1", {f}, 0, Init::kZero);
    p.w2 = b.Add(h + "mlp.w2", {f, w}, 0, Init::kNormal, residual);
    p.b2 = b.Add(h + "mlp.b2", {w}, -1, Init::kZero);
    out.blocks.push_back(p);
  }
  out.lnf_g = b.Add("lnf.g", {w}, -1, Init::kOne);
  out.lnf_b = b.Add("lnf.b", {w}, -1, Init::kZero);
  // bqkv is a bias: a vector of 3 * w / tp locally, and not decayed.
  for (const BlockParams& blk : out.blocks) {
    Param& q = out.params[blk.bqkv];
    q.value.shape = {q.value.size()};
    q.grad.shape = q.value.shape;
    q.decay = false;
  }
  return out;
}

std::vector<size_t> GptParams::BackwardOrder() const {
  std::vector<size_t> order = {lnf_g, lnf_b};
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    for (size_t i : {it->w2, it->b2, it->w1, it->b1, it->ln2_g, it->ln2_b, it->wo, it->bo,
                     it->wqkv, it->bqkv, it->ln1_g, it->ln1_b}) {
      order.push_back(i);
    }
  }
  order.push_back(wpe);
  order.push_back(wte);
  return order;
}

void GptParams::ZeroGrads() {
  for (Param& p : params) std::fill(p.grad.data.begin(), p.grad.data.end(), 0.0f);
}

int64_t GptParams::LocalCount() const {
  int64_t n = 0;
  for (const Param& p : params) n += p.value.size();
  return n;
}

int64_t GptParams::GlobalCount() const {
  int64_t n = 0;
  for (const Param& p : params) n += Product(p.global_shape, 0, p.global_shape.size());
  return n;
}

}  // namespace sublet::train
