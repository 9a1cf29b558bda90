// Quotas, borrowing and fair share (issue 15): what each tenant is
// guaranteed, how far it may borrow idle capacity, and the weighted share
// that orders borrowers. Pure: no state, no I/O.
//
// Config (coordinator config, per tenant, all optional):
//   tenants:
//     - {name: acme, token: T, quota: {gpus: 8}, borrow_limit: {gpus: 4},
//        weight: 2, max_priority: high}
//   fair_share: {half_life: 7d}
// Semantics:
//   - quota.gpus: GPUs guaranteed to the tenant. Its jobs that fit within it
//     are admitted before any borrowing job.
//   - borrow_limit.gpus: how far beyond its quota the tenant may use idle
//     capacity; absent: no limit, 0: never borrows.
//   - weight: the tenant's fair-share weight (default 1, > 0).
//   - max_priority: the highest `priority` its specs may ask for; a spec
//     above it is refused at submit. Default normal once any tenant policy or
//     fair_share is configured; without any, every priority is allowed (the
//     behaviour before quotas).
//   - Among borrowers, the lowest weighted share goes first:
//       share = (in_use / pool + history) / weight
//     where pool is the schedulable GPUs, in_use the GPUs the tenant holds,
//     and history its GPU-seconds decayed with fair_share.half_life
//     (each job's GPU-seconds age from its end; a live job's are current),
//     as a fraction of what the pool could have used over the same decay:
//       history = decayed_gpu_seconds / (pool * half_life / ln 2).
//   A tenant with no quota has quota 0: all it uses is borrowed.
//   - When the pool is smaller than the sum of the quotas (nodes reclaimed by
//     the owner, lost or draining), every quota is scaled down in proportion
//     (largest remainders get the leftover GPUs), so the guarantees add up to
//     the pool and each tenant keeps the same fraction of it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "protocols/job_spec.h"

namespace sublet::coordinator {

struct TenantPolicy {
  std::optional<uint32_t> quota_gpus;
  std::optional<uint32_t> borrow_limit_gpus;
  double weight = 1.0;
  std::optional<protocols::Priority> max_priority;  // absent: see AllowedPriority
};

// The highest priority the tenant may ask for: its max_priority; else normal
// when `policies_configured`, high otherwise.
protocols::Priority AllowedPriority(const TenantPolicy& policy, bool policies_configured);

// 2^(-age / half_life); 1 for a non-positive age.
double DecayFactor(absl::Duration age, absl::Duration half_life);

// The history term of the share: decayed GPU-seconds as a fraction of what
// `pool_gpus` could have used over the decay (0 for an empty pool).
double HistoryFraction(double decayed_gpu_seconds, uint32_t pool_gpus, absl::Duration half_life);

// The quotas in force over `pool_gpus`: as configured while they fit, scaled
// in proportion (Hamilton's largest remainders, ties to the earlier tenant)
// when their sum exceeds the pool.
std::vector<uint32_t> EffectiveQuotas(const std::vector<uint32_t>& quotas, uint32_t pool_gpus);

// (in_use / pool + history) / weight; 0 for an empty pool.
double WeightedShare(uint32_t in_use, double history, uint32_t pool_gpus, double weight);

}  // namespace sublet::coordinator
