// Fairness preemption (issue 15, part 3): getting a guarantee back. When a
// tenant below its quota has a pending job that would fit if borrowers gave
// capacity back, which borrowing jobs are preempted for it. Pure (no state,
// no I/O), like the scheduler and victim choice; Cluster runs it after each
// quota pass and preempts the chosen jobs through the reclaim path (notice,
// the grace as deadline, the acknowledged checkpoint, requeue with
// preemptions + 1, never counted against max_restarts).
//
// Rules:
//  1. A preemptor is a pending job the pass did not place whose tenant stays
//     within its quota in force once it runs (in_use + its GPUs <= quota).
//     Preemptors are taken by priority, then submit order (the quota pass's
//     order for jobs within quota); each tenant's queue is served in its own
//     order and stops at its first preemptor that cannot be helped, so no
//     preemptor jumps another of its tenant's. A job beyond the quota is no
//     preemptor and is passed over (it waits to borrow; a smaller job behind
//     it may start first, as backfill lets it).
//  2. GPUs already coming back (jobs preempting or stopping, on schedulable
//     nodes) count as free: a preemptor they suffice for waits for them and
//     nothing more is preempted, so a grace in progress never causes a second
//     round. Each preemptor claims the GPUs it will use, so two preemptors
//     never count the same ones.
//  3. A victim is a running job (not stopping, not preempting) that has run
//     at least min_runtime, of a tenant that borrows (uses more than its
//     quota in force) at the moment it is chosen, counting the victims chosen
//     before it. So a tenant gives back what it borrowed, and at most one
//     job's GPUs beyond that.
//  4. No cycles. Measured as Kueue's fair sharing measures it, by use above
//     the guarantee, the preemptor's share after the preemption is 0 (its
//     tenant stays within quota) and stays below the victim's (> 0: its
//     tenant borrows). The victim's requeued job can never preempt back: its
//     tenant would need (in_use - v) + v > quota GPUs, so it is no preemptor.
//     (The weighted share of fair_share.h, which counts use within quota and
//     history, orders borrowers; it is not used here, because then a tenant
//     with a large weight or a small history could keep another's guarantee.)
//  5. Which victims, in order of importance: as few jobs as possible; then
//     the highest weighted share (fair_share.h) of the victim's tenant; then
//     the lowest priority; then the least work since the last checkpoint;
//     then the job id. Nodes are chosen greedily, one of the preemptor's
//     groups at a time: each time the node that needs the fewest new victims
//     to hold the group (victims are jobs, so a gang freed for one node frees
//     its other nodes too), then by the victims' order above. Victims that
//     turn out not to be needed are dropped again (last chosen first).
//  6. When only jobs younger than min_runtime could help, nothing is
//     preempted: the preemptor's reason says so and `recheck` says when the
//     first of them comes of age.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "coordinator/scheduler.h"

namespace sublet::coordinator {

// A job holding GPUs now.
struct FairnessJob {
  uint64_t id = 0;
  uint32_t tenant = 0;  // index into the tenants
  int priority = 1;     // higher = more important
  std::vector<std::pair<uint32_t, uint32_t>> gpus;  // (node index, GPUs held there)
  // Preempting or stopping: its GPUs come back without anything more.
  bool returning = false;
  absl::Time eligible_at = absl::InfinitePast();  // start + min_runtime
  double work_since_checkpoint = 0;               // GPU-seconds
};

struct FairnessPreemption {
  uint64_t preemptor = 0;
  std::vector<uint64_t> victims;        // in the order chosen
  std::map<uint64_t, std::string> why;  // per victim: a sentence for `sublet show`
};

struct FairnessResult {
  std::vector<FairnessPreemption> preemptions;
  // Preemptors that wait: for GPUs coming back, or for borrowers' jobs to
  // reach min_runtime. Their new pending reason.
  std::map<uint64_t, std::string> waiting;
  absl::Time recheck = absl::InfiniteFuture();  // rule 6
};

// `tenants`: as the quota pass saw them, with in_use after its placements
// (their quota is the one in force). `unplaced`: pending jobs the pass did
// not place, in any order. `nodes`: free GPUs after the pass's placements.
FairnessResult ChooseFairnessPreemptions(const std::vector<SchedNode>& nodes,
                                         const std::vector<FairnessJob>& live,
                                         std::vector<SchedJob> unplaced,
                                         std::vector<SchedTenant> tenants, absl::Time now);

}  // namespace sublet::coordinator
