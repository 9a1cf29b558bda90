// The row twins and element functions of element_math.h (what the CUDA
// kernels compute per row and per element) against the host layers: the
// same bits where the layer is built from the same expressions, and within
// a few ulp where a GEMM sits in between.
#include "worker/train/element_math.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "tests/train/gradient_check.h"
#include "worker/train/adamw.h"
#include "worker/train/attention.h"
#include "worker/train/cross_entropy.h"
#include "worker/train/gelu.h"
#include "worker/train/gemm.h"
#include "worker/train/layer_norm.h"

namespace sublet::train {
namespace {

using testing::RandomTensor;

TEST(ElementMath, GeluElementsAreTheLayers) {
  const Tensor x = RandomTensor({7, 9}, 1, 4.0f), dy = RandomTensor({7, 9}, 2);
  Tensor y, dx;
  ASSERT_TRUE(GeluForward(x, &y).ok());
  ASSERT_TRUE(GeluBackward(x, dy, &dx).ok());
  for (int64_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(math::GeluForwardAt(x.data[i]), y.data[i]) << i;
    EXPECT_EQ(math::GeluBackwardAt(x.data[i], dy.data[i]), dx.data[i]) << i;
  }
}

// The element functions against an independent reference: GELU's tanh
// form computed in double with std::tanh, and its derivative by central
// differences of that reference (the layer test above only shows that the
// layer uses the element functions).
TEST(ElementMath, GeluIsTheTanhFormulaAndItsBackwardIsItsDerivative) {
  auto reference = [](double v) {
    return 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
  };
  for (double v = -8.0; v <= 8.0; v += 0.0625) {
    const float x = static_cast<float>(v);
    EXPECT_NEAR(math::GeluForwardAt(x), reference(v), 1e-6 + 1e-5 * std::fabs(reference(v)))
        << "x = " << v;
    const double h = 1e-4;
    const double slope = (reference(v + h) - reference(v - h)) / (2 * h);
    EXPECT_NEAR(math::GeluBackwardAt(x, 1.0f), slope, 1e-5 + 1e-4 * std::fabs(slope))
        << "x = " << v;
    EXPECT_NEAR(math::GeluBackwardAt(x, -2.5f), -2.5 * slope, 1e-4 + 1e-4 * std::fabs(slope))
        << "x = " << v;
  }
}

TEST(ElementMath, LayerNormRowTwinsGiveTheLayersBits) {
  const int64_t rows = 5, d = 24;
  const Tensor x = RandomTensor({rows, d}, 3, 2.0f), dy = RandomTensor({rows, d}, 4);
  const Tensor gamma = RandomTensor({d}, 5), beta = RandomTensor({d}, 6);
  Tensor y, dx, dgamma = Tensor::Zeros({d}), dbeta = Tensor::Zeros({d});
  LayerNormCache cache;
  ASSERT_TRUE(LayerNormForward(x, gamma, beta, &y, &cache).ok());
  ASSERT_TRUE(LayerNormBackward(x, gamma, cache, dy, &dx, &dgamma, &dbeta).ok());

  std::vector<float> ty(rows * d), tdx(rows * d), tdg(d), tdb(d), mean(rows), rstd(rows);
  for (int64_t r = 0; r < rows; ++r) {
    math::LayerNormRowForward(&x.data[r * d], d, gamma.data.data(), beta.data.data(),
                              kLayerNormEpsilon, &ty[r * d], &mean[r], &rstd[r]);
    math::LayerNormRowBackward(&x.data[r * d], &dy.data[r * d], d, gamma.data.data(), mean[r],
                               rstd[r], &tdx[r * d], tdg.data(), tdb.data());
  }
  EXPECT_EQ(ty, y.data);
  EXPECT_EQ(mean, cache.mean.data);
  EXPECT_EQ(rstd, cache.rstd.data);
  EXPECT_EQ(tdx, dx.data);
  EXPECT_EQ(tdg, dgamma.data);
  EXPECT_EQ(tdb, dbeta.data);
}

TEST(ElementMath, CrossEntropyRowTwinGivesTheLayersBits) {
  const int64_t rows = 4, vocab = 13;
  const Tensor logits = RandomTensor({rows, vocab}, 7, 5.0f);
  const std::vector<int32_t> targets = {0, 12, 5, 5};
  double loss = 0;
  Tensor probs, dlogits;
  ASSERT_TRUE(CrossEntropyForward(logits, targets, &loss, &probs).ok());
  ASSERT_TRUE(CrossEntropyBackward(probs, targets, &dlogits).ok());

  std::vector<float> p(rows * vocab);
  double total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    total += math::CrossEntropyRow(&logits.data[r * vocab], vocab, targets[r], &p[r * vocab]);
  }
  EXPECT_EQ(p, probs.data);
  EXPECT_EQ(total / rows, loss);
  const float inv_rows = 1.0f / rows;
  for (int64_t i = 0; i < rows * vocab; ++i) {
    const bool is_target = i % vocab == targets[i / vocab];
    EXPECT_EQ(math::CrossEntropyGradAt(p[i], is_target, inv_rows), dlogits.data[i]) << i;
  }
}

// The attention layer's probabilities are the causal softmax row twin applied
// to Q K^T / sqrt(head_dim) (one head, so the GEMM is the layer's own).
TEST(ElementMath, CausalSoftmaxRowTwinMatchesAttentionProbabilities) {
  const int64_t seq = 6, hd = 8;
  const Tensor q = RandomTensor({seq, hd}, 8), k = RandomTensor({seq, hd}, 9),
               v = RandomTensor({seq, hd}, 10);
  Tensor y, probs;
  ASSERT_TRUE(CausalAttentionForward({1, seq, 1}, q, k, v, &y, &probs).ok());
  std::vector<float> s(seq * seq);
  Gemm(Trans::kNo, Trans::kYes, seq, seq, hd, 1.0f / std::sqrt(static_cast<float>(hd)),
       q.data.data(), hd, k.data.data(), hd, 0.0f, s.data(), seq);
  for (int64_t i = 0; i < seq; ++i) {
    math::CausalSoftmaxRow(&s[i * seq], i, seq);
    for (int64_t j = 0; j < seq; ++j) {
      EXPECT_FLOAT_EQ(s[i * seq + j], probs.data[i * seq + j]) << i << "," << j;
      if (!math::CausalVisible(i, j)) {
        EXPECT_EQ(s[i * seq + j], 0.0f);
      }
    }
  }
}

// Softmax backward: dS = P * (dP - rowsum(dP * P)) * scale, checked against
// the Jacobian of the softmax written out: dS_j = sum_k dP_k P_k (d_jk - P_j).
TEST(ElementMath, SoftmaxBackwardRowIsTheSoftmaxJacobian) {
  const int64_t n = 5;
  std::vector<float> p = {0.1f, 0.2f, 0.3f, 0.25f, 0.15f};
  const Tensor dp = RandomTensor({n}, 11);
  std::vector<float> ds = dp.data;
  math::SoftmaxBackwardRow(p.data(), ds.data(), n, 0.5f);
  for (int64_t j = 0; j < n; ++j) {
    double want = 0;
    for (int64_t k = 0; k < n; ++k) want += dp.data[k] * p[k] * ((j == k) - p[j]);
    EXPECT_NEAR(ds[j], 0.5 * want, 1e-6) << j;
  }
}

TEST(ElementMath, AdamWStepIsTheOptimizersUpdate) {
  const Tensor g = RandomTensor({10}, 12);
  Tensor p = RandomTensor({10}, 13), m = RandomTensor({10}, 14, 0.1f), v = Tensor::Zeros({10});
  for (float& x : v.data) x = 0.01f;
  Tensor p2 = p, m2 = m, v2 = v;
  AdamWUpdate({}, 3, 0.01f, /*decay=*/true, g, &p, &m, &v);
  const math::AdamWScalars s = AdamWScalarsAt({}, 3, 0.01f, true);
  for (int64_t i = 0; i < 10; ++i) math::AdamWStep(s, g.data[i], &m2.data[i], &v2.data[i], &p2.data[i]);
  EXPECT_EQ(p2.data, p.data);
  EXPECT_EQ(m2.data, m.data);
  EXPECT_EQ(v2.data, v.data);
  EXPECT_EQ(AdamWScalarsAt({}, 3, 0.01f, false).wd, 0.0f);
}

}  // namespace
}  // namespace sublet::train
