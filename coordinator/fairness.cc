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

// GPUs each node has room for, with a count of schedulable nodes by room,
// so "do `groups` nodes have room for g?" costs O(GPUs per node).
class Room {
 public:
  explicit Room(const std::vector<SchedNode>& nodes) : nodes_(nodes), room_(nodes.size(), 0) {
    for (const SchedNode& n : nodes) cap_ = std::max<int64_t>(cap_, n.total_gpus);
    hist_.assign(static_cast<size_t>(cap_) + 1, 0);
    for (size_t n = 0; n < nodes.size(); ++n) {
      if (nodes[n].schedulable) hist_[0]++;
    }
  }
  int64_t operator[](size_t n) const { return room_[n]; }
  void Add(size_t n, int64_t delta) { Set(n, room_[n] + delta); }
  void Set(size_t n, int64_t value) {
    if (nodes_[n].schedulable) {
      hist_[Bucket(room_[n])]--;
      hist_[Bucket(value)]++;
    }
    room_[n] = value;
  }
  bool Fits(uint32_t groups, uint32_t g) const {
    uint32_t fit = 0;
    for (int64_t v = std::min<int64_t>(g, cap_ + 1); v <= cap_ && fit < groups; ++v) {
      fit += hist_[static_cast<size_t>(v)];
    }
    return fit >= groups;
  }

 private:
  size_t Bucket(int64_t v) const { return static_cast<size_t>(std::clamp<int64_t>(v, 0, cap_)); }
  const std::vector<SchedNode>& nodes_;
  std::vector<int64_t> room_;
  int64_t cap_ = 0;
  std::vector<uint32_t> hist_;
};

class Search {
 public:
  Search(const std::vector<SchedNode>& nodes, const std::vector<FairnessJob>& live,
         std::vector<SchedTenant> tenants, absl::Time now)
      : nodes_(nodes), live_(live), tenants_(std::move(tenants)), now_(now),
        pool_(PoolGpus(nodes)), avail_(nodes), free_(nodes),
        on_node_(nodes.size()), taken_(live.size(), false) {
    for (size_t n = 0; n < nodes.size(); ++n) {
      free_.Set(n, static_cast<int64_t>(nodes[n].free_gpus.size()));
      avail_.Set(n, free_[n]);
    }
    for (size_t j = 0; j < live.size(); ++j) {
      for (auto [node, gpus] : live[j].gpus) {
        if (node >= nodes.size()) continue;
        if (live[j].returning) {
          avail_.Add(node, gpus);
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
    if (avail_.Fits(groups, g)) {
      if (!free_.Fits(groups, g)) {
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
      if (node < nodes_.size()) avail_.Add(node, gpus);
    }
    tenants_[live_[j].tenant].in_use -= Held(live_[j]);
  }

  void Unfree(size_t j) {
    trial_.erase(std::find(trial_.begin(), trial_.end(), j));
    for (auto [node, gpus] : live_[j].gpus) {
      if (node < nodes_.size()) avail_.Add(node, -static_cast<int64_t>(gpus));
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

  // What node n costs now: nothing when it has room, else its victims.
  std::optional<std::pair<Cost, std::vector<size_t>>> Evaluate(size_t n, uint32_t g,
                                                               bool allow_young) {
    if (avail_[n] >= g) return std::pair{Cost{}, std::vector<size_t>{}};
    return NodeVictims(n, g, allow_young);
  }

  // Greedy over nodes (rule 5), lazily: every node's cost once, then the
  // cheapest, its cost recomputed when it comes up (victims chosen since may
  // have raised it: then it goes back; or lowered it, for the other nodes of
  // a gang victim: those are pushed again). trial_ receives the victims.
  bool FindVictims(uint32_t groups, uint32_t g, bool allow_young) {
    struct Entry {
      Cost cost;
      size_t node;
    };
    auto worse = [](const Entry& a, const Entry& b) {  // for a min-heap
      return std::tie(a.cost.count, a.cost.minus_min_share, a.cost.max_priority, a.cost.work,
                      a.node) > std::tie(b.cost.count, b.cost.minus_min_share,
                                         b.cost.max_priority, b.cost.work, b.node);
    };
    std::vector<Entry> heap;
    for (size_t n = 0; n < nodes_.size(); ++n) {
      if (!nodes_[n].schedulable || nodes_[n].total_gpus < g) continue;
      if (auto c = Evaluate(n, g, allow_young)) heap.push_back({c->first, n});
    }
    std::make_heap(heap.begin(), heap.end(), worse);
    std::vector<bool> picked(nodes_.size(), false);
    uint32_t have = 0;
    while (have < groups) {
      if (heap.empty()) return false;
      std::pop_heap(heap.begin(), heap.end(), worse);
      const size_t n = heap.back().node;
      heap.pop_back();
      if (picked[n]) continue;
      auto now = Evaluate(n, g, allow_young);
      if (!now) continue;
      const Entry current{now->first, n};
      if (!heap.empty() && worse(current, heap.front())) {
        heap.push_back(current);
        std::push_heap(heap.begin(), heap.end(), worse);
        continue;
      }
      picked[n] = true;
      ++have;
      for (size_t j : now->second) {
        Free(j);
        for (auto [other, gpus] : live_[j].gpus) {
          if (other >= nodes_.size() || other == n || picked[other] ||
              !nodes_[other].schedulable || nodes_[other].total_gpus < g) {
            continue;
          }
          if (auto c = Evaluate(other, g, allow_young)) {
            heap.push_back({c->first, other});
            std::push_heap(heap.begin(), heap.end(), worse);
          }
        }
      }
    }
    return true;
  }

  // Drops victims that are not needed, the last chosen first.
  void Prune(uint32_t groups, uint32_t g) {
    for (size_t i = trial_.size(); i-- > 0;) {
      const size_t j = trial_[i];
      Unfree(j);
      if (!avail_.Fits(groups, g)) {
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
    const size_t take = std::min<size_t>(groups, fitting.size());
    std::partial_sort(fitting.begin(), fitting.begin() + static_cast<std::ptrdiff_t>(take),
                      fitting.end(), [&](size_t a, size_t b) {
                        return avail_[a] != avail_[b] ? avail_[a] < avail_[b] : a < b;
                      });
    for (size_t k = 0; k < take; ++k) {
      avail_.Add(fitting[k], -static_cast<int64_t>(g));
      free_.Set(fitting[k], std::min(free_[fitting[k]], avail_[fitting[k]]));
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
  Room avail_;  // free + coming back, less what preemptors claimed
  Room free_;   // free now, less what preemptors claimed
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
    // Beyond the quota: no preemptor (it waits to borrow); the tenant's
    // next job may still be one, as backfill lets it start first.
    if (uint64_t{t.in_use} + Need(job) > t.quota) continue;
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
