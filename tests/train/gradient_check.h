// Finite-difference checks for the layers' backward passes.
//
// A layer with output y is reduced to the scalar L = sum(y * r) for a fixed
// random r, so dL/dy = r is what backward is fed. Each input element is then
// nudged by +-h and the central difference (L(+h) - L(-h)) / 2h, with L summed
// in double, is compared with the analytic gradient.
//
// Tolerance: the layers compute in float, so each L carries a rounding error
// of about 1e-7 * sum|y * r|; divided by 2h = 2e-2 that is ~1e-5 per unit of
// output on the small sizes used here. The truncation error of the central
// difference is O(h^2 * f''') ~ 1e-4 for these smooth layers (tanh, exp,
// rsqrt of O(1) values). A gradient passes when
//   |numeric - analytic| <= 2e-3 + 1e-2 * |analytic|,
// loose enough for both errors, and tight enough that a wrong sign, a missing
// term or a transposed GEMM (errors of order the gradient) fails.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "worker/train/tensor.h"

namespace sublet::train::testing {

inline constexpr float kStep = 1e-2f;
inline constexpr double kAbsTolerance = 2e-3;
inline constexpr double kRelTolerance = 1e-2;

// A tensor of `shape` with values uniform in [-scale, scale], reproducible
// per seed.
inline Tensor RandomTensor(std::vector<int64_t> shape, uint32_t seed,
                           float scale = 1.0f) {
  Tensor t = Tensor::Zeros(std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  for (float& v : t.data) v = dist(rng);
  return t;
}

// sum(y * r) in double.
inline double Project(const Tensor& y, const Tensor& r) {
  double sum = 0.0;
  for (int64_t i = 0; i < y.size(); ++i) {
    sum += static_cast<double>(y.data[i]) * r.data[i];
  }
  return sum;
}

// Compares `analytic` with central differences of `loss` with respect to each
// element of `*param` (which `loss` reads); restores `*param` afterwards.
inline void ExpectGradientMatches(const std::string& name, Tensor* param,
                                  const Tensor& analytic,
                                  const std::function<double()>& loss) {
  ASSERT_EQ(param->shape, analytic.shape) << name;
  for (int64_t i = 0; i < param->size(); ++i) {
    const float saved = param->data[i];
    param->data[i] = saved + kStep;
    const double plus = loss();
    param->data[i] = saved - kStep;
    const double minus = loss();
    param->data[i] = saved;
    const double numeric = (plus - minus) / (2.0 * kStep);
    const double want = analytic.data[i];
    EXPECT_NEAR(numeric, want, kAbsTolerance + kRelTolerance * std::abs(want))
        << name << "[" << i << "]";
  }
}

}  // namespace sublet::train::testing
