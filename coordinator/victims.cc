#include "coordinator/victims.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "common/plural.h"
#include "fmt/format.h"

namespace sublet::coordinator {
namespace {

// What taking a node costs now, compared lexicographically (smaller wins).
struct Cost {
  size_t new_jobs = 0;
  int max_priority = -1;
  double work = 0;
  int64_t minus_gpus = 0;
  auto Key() const { return std::tie(new_jobs, max_priority, work, minus_gpus); }
};

Cost CostOf(const VictimNode& node, const std::map<uint64_t, VictimJob>& jobs,
            const std::set<uint64_t>& touched) {
  Cost c;
  c.minus_gpus = -static_cast<int64_t>(node.gpus);
  for (uint64_t id : node.jobs) {
    if (touched.count(id)) continue;
    c.new_jobs++;
    auto it = jobs.find(id);
    if (it == jobs.end()) continue;
    c.max_priority = std::max(c.max_priority, it->second.priority);
    c.work += it->second.work_since_checkpoint;
  }
  return c;
}

}  // namespace

absl::StatusOr<VictimChoice> ChooseVictims(const std::vector<VictimNode>& nodes,
                                           const std::map<uint64_t, VictimJob>& jobs,
                                           uint32_t gpus) {
  uint64_t available = 0;
  for (const VictimNode& n : nodes) available += n.gpus;
  if (available < gpus) {
    return absl::InvalidArgumentError(fmt::format(
        "--gpus {}: only {} {} on nodes that can be reclaimed (ready or lost, not held by "
        "another reclaim)",
        gpus, Plural(available, "GPU"), available == 1 ? "is" : "are"));
  }
  VictimChoice out;
  std::set<uint64_t> touched;
  std::vector<bool> taken(nodes.size(), false);
  uint64_t have = 0;
  while (have < gpus) {
    size_t best = nodes.size();
    Cost best_cost;
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (taken[i] || nodes[i].gpus == 0) continue;
      Cost c = CostOf(nodes[i], jobs, touched);
      if (best == nodes.size() || c.Key() < best_cost.Key() ||
          (c.Key() == best_cost.Key() && nodes[i].name < nodes[best].name)) {
        best = i;
        best_cost = c;
      }
    }
    const VictimNode& node = nodes[best];
    taken[best] = true;
    have += node.gpus;
    out.nodes.push_back(node.name);
    for (uint64_t id : node.jobs) {
      if (!touched.insert(id).second) continue;
      out.jobs.push_back(id);
      auto it = jobs.find(id);
      double work = it == jobs.end() ? 0 : it->second.work_since_checkpoint;
      out.why[id] = fmt::format(
          "runs on {}, taken to free {} (nodes are chosen to touch the fewest jobs, then "
          "the lowest priority, then the least work since the last checkpoint; this job had "
          "{:.0f} GPU-seconds since its last checkpoint)",
          node.name, Plural(gpus, "GPU"), work);
    }
  }
  return out;
}

}  // namespace sublet::coordinator
