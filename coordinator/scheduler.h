// The gang scheduler: one pure pass over a snapshot of the cluster. It decides
// which pending jobs start now and on which GPUs, and why every other pending
// job waits. It owns no state and does no I/O, so it is unit-tested and
// benchmarked directly.
//
// Policy, in order:
//  1. Pending jobs are considered by priority (high first), then submit order.
//  2. A job starts only if all `nodes` ranks-groups fit at once (all or
//     nothing): `nodes` distinct ready nodes with `gpus_per_node` free GPUs
//     each. One node hosts a whole group, so tensor groups stay inside a node.
//     Among fitting nodes we pick the fullest first (best fit), which keeps
//     whole nodes free for wide jobs.
//  3. The first job that does not fit and could ever fit the cluster becomes
//     the head: it gets a reservation (EASY backfill). From the expected end
//     of running jobs (start + time_limit; no limit = never) we compute the
//     shadow time T at which enough nodes will have room for it, and the
//     nodes it will use then.
//  4. A later job may start (backfill) only if it does not delay the head:
//     it ends before T by its own time_limit, or it leaves each reserved node
//     enough free GPUs at T for the head's group.
//  5. An elastic job (min_nodes < nodes) that does not fit whole starts on
//     the most nodes from `nodes` down to min_nodes that fit now without
//     delaying the head; only if none do does it wait (and may be the head,
//     at its full size).
//  6. A job that can never fit the cluster as it is (more nodes than exist,
//     more GPUs per node than any node has) waits with that reason and
//     reserves nothing, so it cannot block anyone.
//  7. With quotas (SchedPolicy::quotas; fair_share.h), rule 1's order becomes:
//     the tenants' queues (each by priority, then submit order) are merged
//     one job at a time, taking first any head that fits within its tenant's
//     quota (by priority, then submit order), then the borrowing head of the
//     tenant with the lowest weighted share. Every placement updates its
//     tenant's use, so the order follows the shares as the pass fills the
//     cluster. A head beyond its tenant's quota + borrow_limit waits and is
//     not tried. Rules 2-6 hold unchanged: a borrower cannot take what the
//     head job is promised, so it borrows only capacity no job ahead of it
//     needs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace sublet::coordinator {

struct SchedNode {
  std::string name;
  uint32_t total_gpus = 0;
  std::vector<uint32_t> free_gpus;  // indices of GPUs no live rank holds
  bool schedulable = true;          // ready (not lost, draining or reclaimed)
};

// GPUs a running job holds on one node, and when it is expected to end.
struct SchedRunning {
  uint32_t node = 0;  // index into the node list
  uint32_t gpus = 0;
  absl::Time expected_end = absl::InfiniteFuture();
};

struct SchedJob {
  uint64_t id = 0;      // the job id, copied to Placement/Waiting and named in reasons
  int priority = 1;     // higher first
  uint64_t order = 0;   // submit order, lower first
  uint32_t nodes = 1;
  uint32_t gpus_per_node = 1;
  absl::Duration time_limit = absl::ZeroDuration();  // zero: unknown/unbounded
  // Elastic: when > 0 and less than `nodes`, the job may start on as few as
  // min_nodes nodes when `nodes` do not fit (it never waits for more).
  uint32_t min_nodes = 0;
  uint32_t tenant = 0;  // index into SchedPolicy::tenants (with quotas)
};

// A tenant as the quota pass sees it (fair_share.h).
struct SchedTenant {
  std::string name;
  uint32_t quota = 0;                    // guaranteed GPUs
  std::optional<uint32_t> borrow_limit;  // beyond the quota; absent: no limit
  double weight = 1.0;
  uint32_t in_use = 0;  // GPUs its live jobs hold now
  double history = 0;   // HistoryFraction of its decayed GPU-seconds
};

struct SchedPolicy {
  bool quotas = false;  // off: rule 1 as it is
  std::vector<SchedTenant> tenants;
};

struct Placement {
  uint64_t job_id = 0;
  std::vector<uint32_t> nodes;              // node indices, node rank order
  std::vector<std::vector<uint32_t>> gpus;  // per node, GPU indices
};

struct Waiting {
  uint64_t job_id = 0;
  std::string reason;
};

struct SchedResult {
  std::vector<Placement> placements;
  std::vector<Waiting> waiting;
  uint64_t head_job = 0;  // the job holding the reservation; 0: none
};

// Schedulable GPUs in all: the pool that shares and quotas are fractions of.
uint32_t PoolGpus(const std::vector<SchedNode>& nodes);

// `jobs` may be in any order; `running` describes GPUs held by live ranks.
SchedResult Schedule(const std::vector<SchedNode>& nodes, const std::vector<SchedRunning>& running,
                     std::vector<SchedJob> jobs, absl::Time now,
                     const SchedPolicy& policy = {});

}  // namespace sublet::coordinator
