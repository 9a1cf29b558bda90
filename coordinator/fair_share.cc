#include "coordinator/fair_share.h"

#include <algorithm>
#include <cmath>

namespace sublet::coordinator {

protocols::Priority AllowedPriority(const TenantPolicy& policy, bool policies_configured) {
  if (policy.max_priority) return *policy.max_priority;
  return policies_configured ? protocols::Priority::kNormal : protocols::Priority::kHigh;
}

double DecayFactor(absl::Duration age, absl::Duration half_life) {
  if (age <= absl::ZeroDuration() || half_life <= absl::ZeroDuration()) {
    return age <= absl::ZeroDuration() ? 1.0 : 0.0;
  }
  return std::exp2(-absl::FDivDuration(age, half_life));
}

double HistoryFraction(double decayed_gpu_seconds, uint32_t pool_gpus, absl::Duration half_life) {
  if (pool_gpus == 0 || half_life <= absl::ZeroDuration()) return 0;
  const double capacity = pool_gpus * absl::ToDoubleSeconds(half_life) / std::log(2.0);
  return decayed_gpu_seconds / capacity;
}

std::vector<uint32_t> EffectiveQuotas(const std::vector<uint32_t>& quotas, uint32_t pool_gpus) {
  uint64_t sum = 0;
  for (uint32_t q : quotas) sum += q;
  if (sum <= pool_gpus) return quotas;
  std::vector<uint32_t> out(quotas.size());
  std::vector<std::pair<uint64_t, size_t>> remainders;  // (remainder, index)
  uint64_t given = 0;
  for (size_t i = 0; i < quotas.size(); ++i) {
    const uint64_t scaled = uint64_t{quotas[i]} * pool_gpus;
    out[i] = static_cast<uint32_t>(scaled / sum);
    given += out[i];
    remainders.push_back({scaled % sum, i});
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; given < pool_gpus && k < remainders.size(); ++k, ++given) {
    ++out[remainders[k].second];
  }
  return out;
}

double WeightedShare(uint32_t in_use, double history, uint32_t pool_gpus, double weight) {
  if (pool_gpus == 0 || weight <= 0) return 0;
  return (static_cast<double>(in_use) / pool_gpus + history) / weight;
}

}  // namespace sublet::coordinator
