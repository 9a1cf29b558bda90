#include "worker/train/adamw.h"

#include <algorithm>
#include <cmath>

namespace sublet::train {

math::AdamWScalars AdamWScalarsAt(const AdamWOptions& o, int64_t t, float lr, bool decay) {
  const double c1 = 1.0 - std::pow(static_cast<double>(o.beta1), static_cast<double>(t));
  const double c2 = 1.0 - std::pow(static_cast<double>(o.beta2), static_cast<double>(t));
  return {o.beta1, o.beta2, o.eps, decay ? o.weight_decay : 0.0f, lr, c1, c2};
}

void AdamWUpdate(const AdamWOptions& o, int64_t t, float lr, bool decay, const Tensor& grad,
                 Tensor* param, Tensor* m, Tensor* v) {
  const math::AdamWScalars s = AdamWScalarsAt(o, t, lr, decay);
  for (int64_t i = 0; i < param->size(); ++i) {
    math::AdamWStep(s, grad.data[i], &m->data[i], &v->data[i], &param->data[i]);
  }
}

void AdamWUpdateInto(const AdamWOptions& o, int64_t t, float lr, bool decay, const Tensor& grad,
                     const Tensor& param, const Tensor& m, const Tensor& v, Tensor* param_out,
                     Tensor* m_out, Tensor* v_out) {
  const math::AdamWScalars s = AdamWScalarsAt(o, t, lr, decay);
  const int64_t n = param.size();
  const float* pin = param.data.data();
  const float* min = m.data.data();
  const float* vin = v.data.data();
  const float* g = grad.data.data();
  float* pout = param_out->data.data();
  float* mout = m_out->data.data();
  float* vout = v_out->data.data();
  for (int64_t i = 0; i < n; ++i) {
    float pi = pin[i], mi = min[i], vi = vin[i];
    math::AdamWStep(s, g[i], &mi, &vi, &pi);
    pout[i] = pi;
    mout[i] = mi;
    vout[i] = vi;
  }
}

float LrSchedule::At(int64_t step) const {
  if (warmup > 0 && step < warmup) {
    return peak * static_cast<float>(step + 1) / static_cast<float>(warmup);
  }
  const double span = static_cast<double>(std::max<int64_t>(1, total - warmup));
  const double progress = std::clamp(static_cast<double>(step - warmup) / span, 0.0, 1.0);
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return static_cast<float>(min_lr + (peak - min_lr) * cosine);
}

float ClipFactor(double sum_sq, double max_norm) {
  const double norm = std::sqrt(sum_sq);
  if (!(norm > max_norm)) return 1.0f;
  return static_cast<float>(max_norm / (norm + 1e-6));
}

double SumSquares(const float* x, size_t n) {
  double acc[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += static_cast<double>(x[i + j]) * x[i + j];
  }
  for (; i < n; ++i) acc[i % 8] += static_cast<double>(x[i]) * x[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

}  // namespace sublet::train
