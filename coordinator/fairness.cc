#include "coordinator/fairness.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>
#include <tuple>

#include "common/duration.h"
#include "common/plural.h"
#include "coordinator/fair_share.h"
#include "fmt/format.h"

namespace sublet::coordinator {
namespace {

uint32_t Need(const SchedJob& job) { return job.nodes * job.gpus_per_node; }

uint32_t Held(const FairnessJob& job) {
  uint32_t held = 0;
  for (auto [node, gpus] : job.gpus) held += gpus;
  return held;
}

class Search {
 public:
  Search(const std::vector<SchedNode>& nodes, const std::vector<FairnessJob>& live,
         std::vector<SchedTenant> tenants, absl::Time now)
      : nodes_(nodes), live_(live), tenants_(std::move(tenants)), now_(now),
        pool_(PoolGpus(nodes)), avail_(nodes.size(), 0), free_(nodes.size(), 0),
        on_node_(nodes.size()), taken_(live.size(), false) {
    for (size_t n = 0; n < nodes.size(); ++n) {
      free_[n] = nodes[n].free_gpus.size();
      avail_[n] = free_[n];
    }
    for (size_t j = 0; j < live.size(); ++j) {
      for (auto [node, gpus] : live[j].gpus) {
        if (node >= nodes.size()) continue;
        if (live[j].returning) {
          avail_[node] += gpus;
        } else {
          on_node_[node].push_back(j);
        }
      }
    }
  }

  // Rules 1-6 for one preemptor, in the order the caller gives them.
  // nullopt: it cannot be helped now (the caller stops its tenant).
  std::optional<FairnessPreemption> Help(const SchedJob& job, FairnessResult& out) {
    const uint32_t groups = job.min_nodes > 0 ? std::min(job.min_nodes, job.nodes) : job.nodes;
    const uint32_t g = job.gpus_per_node;
    trial_.clear();
    if (Fits(groups, g, avail_)) {
      if (!Fits(groups, g, free_)) {
        out.waiting[job.id] = fmt::format(
            "{} is within its {}-GPU quota; waiting for the GPUs that preempted or stopping "
            "jobs are giving back",
            tenants_[job.tenant].name, tenants_[job.tenant].quota);
      }
      Commit(job, groups, g);
      return FairnessPreemption{job.id, {}, {}};
    }
    if (FindVictims(groups, g, /*allow_young=*/false)) {
      Prune(groups, g);
      FairnessPreemption p;
      p.preemptor = job.id;
      for (size_t j : trial_) {
        p.victims.push_back(live_[j].id);
        p.why[live_[j].id] = Why(job, j);
        taken_[j] = true;
      }
      Commit(job, groups, g);
      return p;
    }
    Undo();
    if (FindVictims(groups, g, /*allow_young=*/true)) {
      absl::Time first = absl::InfiniteFuture();
      for (size_t j : trial_) {
        if (live_[j].eligible_at > now_) first = std::min(first, live_[j].eligible_at);
      }
      out.recheck = std::min(out.recheck, first);
      out.waiting[job.id] = fmt::format(
          "{} is below its {}-GPU quota and borrowers' jobs would give GPUs back for this job, "
          "but they have not run min_runtime yet (the first is eligible in {})",
          tenants_[job.tenant].name, tenants_[job.tenant].quota,
          sublet::FormatDuration(absl::Seconds(std::ceil(absl::ToDoubleSeconds(first - now_)))));
    }
    Undo();
    return std::nullopt;
  }

  SchedTenant& tenant(uint32_t t) { return tenants_[t]; }

 private:
  // What choosing the victims on one node costs (smaller is better): the
  // fewest new victims, then the highest share among them (the lowest share
  // it touches, negated), the lowest priority, the least work.
  struct Cost {
    size_t count = 0;
    double minus_min_share = 0;
    int max_priority = -1;
    double work = 0;
    auto Key() const { return std::tie(count, minus_min_share, max_priority, work); }
  };

  double Share(uint32_t t) const {
    const SchedTenant& s = tenants_[t];
    return WeightedShare(s.in_use, s.history, pool_, s.weight);
  }

  bool Fits(uint32_t groups, uint32_t g, const std::vector<int64_t>& room) const {
    uint32_t fit = 0;
    for (size_t n = 0; n < nodes_.size() && fit < groups; ++n) {
      if (nodes_[n].schedulable && room[n] >= g) ++fit;
    }
    return fit >= groups;
  }

  bool Eligible(size_t j, bool allow_young) const {
    const FairnessJob& job = live_[j];
    if (taken_[j] || job.returning || job.tenant >= tenants_.size()) return false;
    if (std::find(trial_.begin(), trial_.end(), j) != trial_.end()) return false;
    if (!allow_young && job.eligible_at > now_) return false;
    return tenants_[job.tenant].in_use > tenants_[job.tenant].quota;
  }

  void Free(size_t j) {
    trial_.push_back(j);
    for (auto [node, gpus] : live_[j].gpus) {
      if (node < nodes_.size()) avail_[node] += gpus;
    }
    tenants_[live_[j].tenant].in_use -= Held(live_[j]);
  }

  void Unfree(size_t j) {
    trial_.erase(std::find(trial_.begin(), trial_.end(), j));
    for (auto [node, gpus] : live_[j].gpus) {
      if (node < nodes_.size()) avail_[node] -= gpus;
    }
    tenants_[live_[j].tenant].in_use += Held(live_[j]);
  }

  void Undo() {
    while (!trial_.empty()) Unfree(trial_.back());
  }

  // The victims that would make node n hold a group of g (rule 5's order
  // within the node); nullopt when its borrowers' jobs cannot.
  std::optional<std::pair<Cost, std::vector<size_t>>> NodeVictims(size_t n, uint32_t g,
                                                                  bool allow_young) {
    std::vector<size_t> candidates;
    for (size_t j : on_node_[n]) {
      if (Eligible(j, allow_young)) candidates.push_back(j);
    }
    auto key = [&](size_t j) {
      return std::make_tuple(-Share(live_[j].tenant), live_[j].priority,
                             live_[j].work_since_checkpoint, live_[j].id);
    };
    std::sort(candidates.begin(), candidates.end(),
              [&](size_t a, size_t b) { return key(a) < key(b); });
    // One job alone, when one suffices: the fewest victims.
    for (size_t j : candidates) {
      uint32_t here = 0;
      for (auto [node, gpus] : live_[j].gpus) here += node == n ? gpus : 0;
      if (avail_[n] + here >= g) {
        return std::pair{Cost{1, -Share(live_[j].tenant), live_[j].priority,
                              live_[j].work_since_checkpoint},
                         std::vector<size_t>{j}};
      }
    }
    // Otherwise in order, each while its tenant still borrows.
    std::vector<size_t> chosen;
    Cost cost;
    cost.minus_min_share = -1e300;
    for (size_t j : candidates) {
      if (avail_[n] >= g) break;
      if (!Eligible(j, allow_young)) continue;  // its tenant no longer borrows
      cost.minus_min_share = std::max(cost.minus_min_share, -Share(live_[j].tenant));
      cost.max_priority = std::max(cost.max_priority, live_[j].priority);
      cost.work += live_[j].work_since_checkpoint;
      Free(j);
      chosen.push_back(j);
    }
    const bool enough = avail_[n] >= g;
    for (auto it = chosen.rbegin(); it != chosen.rend(); ++it) Unfree(*it);
    if (!enough) return std::nullopt;
    cost.count = chosen.size();
    return std::pair{cost, chosen};
  }

  // Greedy over nodes (rule 5): trial_ receives the victims.
  bool FindVictims(uint32_t groups, uint32_t g, bool allow_young) {
    std::vector<bool> picked(nodes_.size(), false);
    for (uint32_t k = 0; k < groups; ++k) {
      std::optional<size_t> best;
      std::pair<Cost, std::vector<size_t>> best_choice;
      for (size_t n = 0; n < nodes_.size(); ++n) {
        if (picked[n] || !nodes_[n].schedulable || nodes_[n].total_gpus < g) continue;
        std::optional<std::pair<Cost, std::vector<size_t>>> choice;
        if (avail_[n] >= g) {
          choice = std::pair{Cost{}, std::vector<size_t>{}};
        } else {
          choice = NodeVictims(n, g, allow_young);
        }
        if (!choice) continue;
        if (!best || choice->first.Key() < best_choice.first.Key()) {
          best = n;
          best_choice = std::move(*choice);
        }
        if (best_choice.first.count == 0) break;  // nothing beats a node with room
      }
      if (!best) return false;
      picked[*best] = true;
      for (size_t j : best_choice.second) Free(j);
    }
    return true;
  }

  // Drops victims that are not needed, the last chosen first.
  void Prune(uint32_t groups, uint32_t g) {
    for (size_t i = trial_.size(); i-- > 0;) {
      const size_t j = trial_[i];
      Unfree(j);
      if (!Fits(groups, g, avail_)) {
        Free(j);  // appended at the end; order of the rest is kept
        std::rotate(trial_.begin() + static_cast<std::ptrdiff_t>(i), trial_.end() - 1,
                    trial_.end());
      }
    }
  }

  // The preemptor claims its groups on the fullest nodes that hold one.
  void Commit(const SchedJob& job, uint32_t groups, uint32_t g) {
    std::vector<size_t> fitting;
    for (size_t n = 0; n < nodes_.size(); ++n) {
      if (nodes_[n].schedulable && avail_[n] >= g) fitting.push_back(n);
    }
    std::sort(fitting.begin(), fitting.end(), [&](size_t a, size_t b) {
      return avail_[a] != avail_[b] ? avail_[a] < avail_[b] : a < b;
    });
    for (uint32_t k = 0; k < groups && k < fitting.size(); ++k) {
      avail_[fitting[k]] -= g;
      free_[fitting[k]] = std::min(free_[fitting[k]], avail_[fitting[k]]);
    }
    tenants_[job.tenant].in_use += groups * g;
    trial_.clear();
  }

  std::string Why(const SchedJob& preemptor, size_t j) const {
    const FairnessJob& victim = live_[j];
    const SchedTenant& mine = tenants_[preemptor.tenant];
    const SchedTenant& theirs = tenants_[victim.tenant];
    const uint32_t held = Held(victim);
    // What the victim's tenant used when it was chosen, by this call's end.
    return fmt::format(
        "for job {} of tenant {}, which needs {} within its {}-GPU quota: tenant {} borrows "
        "beyond its {}-GPU quota (this job holds {}; share {:.2f}); victims are the fewest "
        "jobs of borrowing tenants, then the highest share, the lowest priority, the least "
        "work since the last checkpoint (this job: {:.0f} GPU-seconds)",
        preemptor.id, mine.name, Plural(Need(preemptor), "GPU"), mine.quota, theirs.name,
        theirs.quota, Plural(held, "GPU"),
        WeightedShare(theirs.in_use + held, theirs.history, pool_, theirs.weight),
        victim.work_since_checkpoint);
  }

  const std::vector<SchedNode>& nodes_;
  const std::vector<FairnessJob>& live_;
  std::vector<SchedTenant> tenants_;
  absl::Time now_;
  uint32_t pool_;
  std::vector<int64_t> avail_;  // free + coming back, less what preemptors claimed
  std::vector<int64_t> free_;   // free now, less what preemptors claimed
  std::vector<std::vector<size_t>> on_node_;  // live jobs that may be victims, per node
  std::vector<bool> taken_;                   // preempted by this call
  std::vector<size_t> trial_;                 // the victims of the preemptor at hand
};

}  // namespace

FairnessResult ChooseFairnessPreemptions(const std::vector<SchedNode>& nodes,
                                         const std::vector<FairnessJob>& live,
                                         std::vector<SchedJob> unplaced,
                                         std::vector<SchedTenant> tenants, absl::Time now) {
  FairnessResult out;
  const size_t tenant_count = tenants.size();
  Search search(nodes, live, std::move(tenants), now);
  std::sort(unplaced.begin(), unplaced.end(), [](const SchedJob& a, const SchedJob& b) {
    if (a.priority != b.priority) return a.priority > b.priority;
    return a.order < b.order;
  });
  std::vector<bool> stopped(tenant_count, false);
  for (const SchedJob& job : unplaced) {
    if (job.tenant >= tenant_count || stopped[job.tenant]) continue;
    const SchedTenant& t = search.tenant(job.tenant);
    if (uint64_t{t.in_use} + Need(job) > t.quota) {
      stopped[job.tenant] = true;
      continue;
    }
    std::optional<FairnessPreemption> p = search.Help(job, out);
    if (!p) {
      stopped[job.tenant] = true;
      continue;
    }
    if (!p->victims.empty()) out.preemptions.push_back(std::move(*p));
  }
  return out;
}

}  // namespace sublet::coordinator
