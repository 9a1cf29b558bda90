#include "worker/train/adamw.h"

#include <gtest/gtest.h>

#include <cmath>

namespace sublet::train {
namespace {

TEST(AdamW, FirstStepMovesEachParameterByLrAgainstItsGradientSign) {
  Tensor p{{3}, {1.0f, 1.0f, 1.0f}}, g{{3}, {0.5f, -2.0f, 0.0f}};
  Tensor m = Tensor::Zeros({3}), v = Tensor::Zeros({3});
  AdamWUpdate({}, 1, 0.1f, /*decay=*/false, g, &p, &m, &v);
  EXPECT_NEAR(p.data[0], 0.9f, 1e-5);
  EXPECT_NEAR(p.data[1], 1.1f, 1e-5);
  EXPECT_FLOAT_EQ(p.data[2], 1.0f);
}

TEST(AdamW, WeightDecayShrinksOnlyDecayedParameters) {
  Tensor g{{1}, {0.0f}};
  Tensor a{{1}, {2.0f}}, b{{1}, {2.0f}};
  Tensor m = Tensor::Zeros({1}), v = Tensor::Zeros({1});
  AdamWUpdate({}, 1, 0.5f, true, g, &a, &m, &v);
  AdamWUpdate({}, 1, 0.5f, false, g, &b, &m, &v);
  EXPECT_NEAR(a.data[0], 2.0f - 0.5f * 0.1f * 2.0f, 1e-6);
  EXPECT_FLOAT_EQ(b.data[0], 2.0f);
}

// The step after a checkpoint runs out of place (the writer still reads the
// old state): it must leave the same bits as the in-place step and not touch
// its inputs.
TEST(AdamW, OutOfPlaceStepIsBitwiseTheInPlaceStepAndLeavesItsInputs) {
  const int64_t n = 2 * 1024 + 37;
  Tensor p = Tensor::Zeros({n}), g = Tensor::Zeros({n}), m = Tensor::Zeros({n}),
         v = Tensor::Zeros({n});
  for (int64_t i = 0; i < n; ++i) {
    p.data[i] = std::sin(0.1f * i);
    g.data[i] = std::cos(0.37f * i) - 0.2f;
    m.data[i] = 0.01f * std::sin(0.7f * i);
    v.data[i] = 0.001f + 0.0001f * (i % 13);
  }
  const Tensor p0 = p, m0 = m, v0 = v;
  Tensor po = Tensor::Zeros({n}), mo = Tensor::Zeros({n}), vo = Tensor::Zeros({n});
  AdamWUpdateInto({}, 7, 0.01f, /*decay=*/true, g, p, m, v, &po, &mo, &vo);
  EXPECT_EQ(p.data, p0.data);
  EXPECT_EQ(m.data, m0.data);
  EXPECT_EQ(v.data, v0.data);
  AdamWUpdate({}, 7, 0.01f, /*decay=*/true, g, &p, &m, &v);
  EXPECT_EQ(po.data, p.data);
  EXPECT_EQ(mo.data, m.data);
  EXPECT_EQ(vo.data, v.data);
  EXPECT_NE(po.data, p0.data);
}

TEST(LrSchedule, WarmsUpLinearlyThenDecaysByCosineToTheFloor) {
  LrSchedule s{1.0f, 0.1f, 4, 14};
  EXPECT_FLOAT_EQ(s.At(0), 0.25f);
  EXPECT_FLOAT_EQ(s.At(3), 1.0f);
  EXPECT_FLOAT_EQ(s.At(4), 1.0f);
  EXPECT_NEAR(s.At(9), 0.55f, 1e-6);
  EXPECT_NEAR(s.At(14), 0.1f, 1e-6);
  EXPECT_NEAR(s.At(100), 0.1f, 1e-6);
}

TEST(ClipFactor, ScalesOnlyNormsAboveTheLimit) {
  EXPECT_FLOAT_EQ(ClipFactor(0.25, 1.0), 1.0f);
  EXPECT_NEAR(ClipFactor(16.0, 1.0), 0.25f, 1e-6);
}

}  // namespace
}  // namespace sublet::train
