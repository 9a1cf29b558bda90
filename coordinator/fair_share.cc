#include "coordinator/fair_share.h"

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

double WeightedShare(uint32_t in_use, double history, uint32_t pool_gpus, double weight) {
  if (pool_gpus == 0 || weight <= 0) return 0;
  return (static_cast<double>(in_use) / pool_gpus + history) / weight;
}

}  // namespace sublet::coordinator
