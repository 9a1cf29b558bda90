// Victim selection for a reclaim by GPU count: which whole nodes to take so
// that at least `gpus` GPUs go back to the internal team, hurting tenants as
// little as possible. Pure (no state, no I/O), like the scheduler.
//
// Policy (DESIGN.md "Reclaim transaction", step 2), greedy, one node at a
// time, each time the node that adds, in order of importance:
//  1. the fewest jobs not already touched (idle nodes first; a node whose
//     jobs are already being preempted costs nothing more);
//  2. then the lowest priority among those jobs;
//  3. then the least work since their last checkpoint (GPU-seconds a resume
//     would redo);
//  4. then the most GPUs (fewer nodes), then the name (deterministic).
// A gang spans nodes, so taking one of its nodes preempts it everywhere; the
// greedy order makes the job's other nodes free to take next.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace sublet::coordinator {

struct VictimNode {
  std::string name;
  uint32_t gpus = 0;
  std::vector<uint64_t> jobs;  // live jobs with ranks on the node
};

struct VictimJob {
  int priority = 1;                // higher = more important
  double work_since_checkpoint = 0;  // GPU-seconds
};

struct VictimChoice {
  std::vector<std::string> nodes;       // in the order chosen
  std::vector<uint64_t> jobs;           // every job touched, in the order touched
  std::map<uint64_t, std::string> why;  // per job: a sentence for `sublet show`
};

// `nodes` are the nodes that may be taken (ready or lost, not already held by
// a reclaim); `jobs` describes every job listed on them. InvalidArgument
// (naming --gpus) when they hold fewer than `gpus` GPUs in all.
absl::StatusOr<VictimChoice> ChooseVictims(const std::vector<VictimNode>& nodes,
                                           const std::map<uint64_t, VictimJob>& jobs,
                                           uint32_t gpus);

}  // namespace sublet::coordinator
