#include "coordinator/scheduler.h"

#include <algorithm>
#include <numeric>

#include "common/plural.h"
#include "coordinator/fair_share.h"
#include "fmt/format.h"

namespace sublet::coordinator {
namespace {

// The head job's reservation (EASY backfill): at `shadow` it will start on
// `nodes`; `spare[i]` is what nodes[i] can give to jobs running past shadow.
struct Reservation {
  bool active = false;
  uint64_t job_id = 0;
  uint32_t gpus_per_node = 0;
  uint32_t node_count = 0;
  absl::Time shadow;
  std::vector<int64_t> spare;  // indexed by node; -1 when not reserved
};

class Pass {
 public:
  Pass(const std::vector<SchedNode>& nodes, const std::vector<SchedRunning>& running, absl::Time now)
      : nodes_(nodes), now_(now), free_(nodes.size()), releases_(nodes.size()) {
    for (size_t i = 0; i < nodes.size(); ++i) {
      free_[i] = static_cast<uint32_t>(nodes[i].free_gpus.size());
      max_total_ = std::max(max_total_, nodes[i].total_gpus);
    }
    hist_.assign(max_total_ + 2, 0);
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (nodes[i].schedulable) hist_[std::min(free_[i], max_total_)]++;
    }
    for (const SchedRunning& r : running) {
      if (r.node < nodes.size()) releases_[r.node].push_back({r.expected_end, r.gpus});
    }
  }

  enum class Outcome { kPlaced, kWaits, kNeverFits };

  // Places `job` or says in out.waiting why it waits.
  Outcome Consider(const SchedJob& job, SchedResult& out) {
    if (!CouldEverFit(job, out)) return Outcome::kNeverFits;
    const bool restricted = reservation_.active && !EndsBeforeShadow(job);
    // An elastic job (min_nodes, set only after a preemption) takes as many
    // of its nodes as fit now, down to min_nodes.
    const uint32_t at_least = job.min_nodes > 0 ? std::min(job.min_nodes, job.nodes) : job.nodes;
    std::vector<uint32_t> chosen = Choose(job, restricted, at_least);
    if (!chosen.empty()) {
      SchedJob placed = job;
      placed.nodes = static_cast<uint32_t>(chosen.size());
      Place(placed, chosen, out);
      return Outcome::kPlaced;
    }
    if (CountFitting(job.gpus_per_node) >= job.nodes) {
      // It fits now but only by taking what the head job is promised.
      out.waiting.push_back(
          {job.id,
           fmt::format("waiting behind job {} (first in queue, needs {} with {}): starting now "
                       "would delay it",
                       reservation_.job_id, Plural(reservation_.node_count, "node"),
                       Plural(reservation_.gpus_per_node, "GPU"))});
      return Outcome::kWaits;
    }
    out.waiting.push_back({job.id, NeedsText(job)});
    if (!reservation_.active) Reserve(job, out);
    return Outcome::kWaits;
  }

 private:
  struct Release {
    absl::Time end;
    uint32_t gpus;
  };

  bool CouldEverFit(const SchedJob& job, SchedResult& out) {
    const uint32_t needed = job.min_nodes > 0 ? std::min(job.min_nodes, job.nodes) : job.nodes;
    uint32_t big_enough = 0;
    uint32_t ready = 0;
    for (const SchedNode& n : nodes_) {
      if (!n.schedulable) continue;
      ++ready;
      if (n.total_gpus >= job.gpus_per_node) ++big_enough;
    }
    if (big_enough >= needed) return true;
    std::string reason;
    if (ready == 0) {
      reason = "no ready nodes in the cluster";
    } else if (big_enough == 0) {
      reason = fmt::format("needs {} per node; no ready node has that many (largest: {})",
                           Plural(job.gpus_per_node, "GPU"), LargestReadyNode());
    } else {
      reason = fmt::format("needs {} with {}; the cluster has {} such ready node{}",
                           Plural(job.nodes, "node"), Plural(job.gpus_per_node, "GPU"), big_enough,
                           big_enough == 1 ? "" : "s");
    }
    out.waiting.push_back({job.id, std::move(reason)});
    return false;
  }

  uint32_t LargestReadyNode() const {
    uint32_t largest = 0;
    for (const SchedNode& n : nodes_) {
      if (n.schedulable) largest = std::max(largest, n.total_gpus);
    }
    return largest;
  }

  std::string NeedsText(const SchedJob& job) const {
    uint32_t have = CountFitting(job.gpus_per_node);
    return fmt::format("needs {} node{} with {} free GPU{}; {} {}", job.nodes,
                       job.nodes == 1 ? "" : "s", job.gpus_per_node,
                       job.gpus_per_node == 1 ? "" : "s", have, have == 1 ? "has them" : "have them");
  }

  uint32_t CountFitting(uint32_t gpus) const {
    uint32_t count = 0;
    for (uint32_t g = std::min(gpus, max_total_ + 1); g < hist_.size(); ++g) count += hist_[g];
    return count;
  }

  bool EndsBeforeShadow(const SchedJob& job) const {
    return job.time_limit > absl::ZeroDuration() && now_ + job.time_limit <= reservation_.shadow;
  }

  // Best fit: the fullest nodes that still have room, so whole nodes stay
  // free; job.nodes of them, or all that fit when that is at least
  // `at_least`; none otherwise.
  std::vector<uint32_t> Choose(const SchedJob& job, bool restricted, uint32_t at_least) const {
    if (CountFitting(job.gpus_per_node) < at_least) return {};
    std::vector<uint32_t> candidates;
    for (uint32_t i = 0; i < nodes_.size(); ++i) {
      if (!nodes_[i].schedulable || free_[i] < job.gpus_per_node) continue;
      if (restricted && reservation_.spare[i] >= 0 &&
          reservation_.spare[i] < static_cast<int64_t>(job.gpus_per_node)) {
        continue;
      }
      candidates.push_back(i);
    }
    if (candidates.size() < at_least) return {};
    const size_t take = std::min<size_t>(job.nodes, candidates.size());
    auto fuller = [&](uint32_t a, uint32_t b) {
      if (free_[a] != free_[b]) return free_[a] < free_[b];
      return nodes_[a].name < nodes_[b].name;
    };
    std::partial_sort(candidates.begin(), candidates.begin() + take, candidates.end(), fuller);
    candidates.resize(take);
    // Node rank order follows node names, so placements read naturally.
    std::sort(candidates.begin(), candidates.end(),
              [&](uint32_t a, uint32_t b) { return nodes_[a].name < nodes_[b].name; });
    return candidates;
  }

  void Place(const SchedJob& job, const std::vector<uint32_t>& chosen, SchedResult& out) {
    Placement p;
    p.job_id = job.id;
    const bool past_shadow = reservation_.active && !EndsBeforeShadow(job);
    for (uint32_t n : chosen) {
      const std::vector<uint32_t>& free_list = nodes_[n].free_gpus;
      const size_t used = nodes_[n].free_gpus.size() - free_[n];
      p.nodes.push_back(n);
      p.gpus.emplace_back(free_list.begin() + used, free_list.begin() + used + job.gpus_per_node);
      hist_[std::min(free_[n], max_total_)]--;
      free_[n] -= job.gpus_per_node;
      hist_[std::min(free_[n], max_total_)]++;
      absl::Time end = job.time_limit > absl::ZeroDuration() ? now_ + job.time_limit
                                                            : absl::InfiniteFuture();
      releases_[n].push_back({end, job.gpus_per_node});
      if (past_shadow && reservation_.spare[n] >= 0) reservation_.spare[n] -= job.gpus_per_node;
    }
    out.placements.push_back(std::move(p));
  }

  // When node n will first have `gpus` free, from the expected ends of what runs there.
  absl::Time AvailableAt(uint32_t n, uint32_t gpus) {
    if (free_[n] >= gpus) return now_;
    std::vector<Release>& rel = releases_[n];
    std::sort(rel.begin(), rel.end(), [](const Release& a, const Release& b) { return a.end < b.end; });
    uint32_t have = free_[n];
    for (const Release& r : rel) {
      have += r.gpus;
      if (have >= gpus) return r.end;
    }
    return absl::InfiniteFuture();
  }

  uint32_t FreeAt(uint32_t n, absl::Time t) const {
    uint32_t have = free_[n];
    for (const Release& r : releases_[n]) {
      if (r.end <= t) have += r.gpus;
    }
    return have;
  }

  void Reserve(const SchedJob& job, SchedResult& out) {
    std::vector<std::pair<absl::Time, uint32_t>> when;
    for (uint32_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].schedulable && nodes_[i].total_gpus >= job.gpus_per_node) {
        when.push_back({AvailableAt(i, job.gpus_per_node), i});
      }
    }
    std::sort(when.begin(), when.end(), [&](const auto& a, const auto& b) {
      if (a.first != b.first) return a.first < b.first;
      return nodes_[a.second].name < nodes_[b.second].name;
    });
    // An elastic job larger than the cluster reserves what the cluster has.
    const uint32_t count = std::min<uint32_t>(job.nodes, static_cast<uint32_t>(when.size()));
    if (count == 0) return;
    reservation_.active = true;
    reservation_.job_id = job.id;
    reservation_.gpus_per_node = job.gpus_per_node;
    reservation_.node_count = count;
    reservation_.shadow = when[count - 1].first;
    reservation_.spare.assign(nodes_.size(), -1);
    for (uint32_t k = 0; k < count; ++k) {
      uint32_t n = when[k].second;
      // At an infinite shadow even unbounded jobs count as ended: the head
      // then starts "when everything has ended", and spare is what is left.
      reservation_.spare[n] =
          static_cast<int64_t>(FreeAt(n, reservation_.shadow)) - job.gpus_per_node;
    }
    out.head_job = job.id;
  }

  const std::vector<SchedNode>& nodes_;
  absl::Time now_;
  std::vector<uint32_t> free_;
  std::vector<std::vector<Release>> releases_;
  uint32_t max_total_ = 0;
  std::vector<uint32_t> hist_;  // schedulable nodes by free GPU count
  Reservation reservation_;
};

bool Before(const SchedJob& a, const SchedJob& b) {
  if (a.priority != b.priority) return a.priority > b.priority;
  return a.order < b.order;
}

uint32_t Need(const SchedJob& job) { return job.nodes * job.gpus_per_node; }

// The quota pass: tenants' queues merged one job at a time, each time the
// best head: any that fits within its tenant's quota first (by priority,
// then submit order), then borrowers by lowest weighted share. A head beyond
// its tenant's quota + borrow_limit waits without being tried.
void ScheduleWithQuotas(Pass& pass, uint32_t pool, const SchedPolicy& policy,
                        std::vector<SchedJob> jobs, SchedResult& result) {
  std::vector<SchedTenant> tenants = policy.tenants;  // in_use grows as jobs are placed
  std::vector<std::vector<SchedJob>> queues(tenants.size());
  for (SchedJob& job : jobs) {
    if (job.tenant >= tenants.size()) {
      result.waiting.push_back({job.id, "internal: the job's tenant has no quota entry"});
      continue;
    }
    queues[job.tenant].push_back(std::move(job));
  }
  for (auto& q : queues) std::sort(q.begin(), q.end(), Before);
  std::vector<size_t> next(queues.size(), 0);
  auto after = [&](size_t t) { return uint64_t{tenants[t].in_use} + Need(queues[t][next[t]]); };
  // Skips (with their reason) t's heads beyond its quota + borrow_limit:
  // only t's own placements change that, so they wait for this pass.
  auto skip_over_limit = [&](size_t t) {
    const SchedTenant& tenant = tenants[t];
    if (!tenant.borrow_limit) return;
    for (; next[t] < queues[t].size() && after(t) > uint64_t{tenant.quota} + *tenant.borrow_limit;
         ++next[t]) {
      const SchedJob& job = queues[t][next[t]];
      result.waiting.push_back(
          {job.id, fmt::format("{} uses {} of its {}-GPU quota and may borrow at most {} more "
                               "(borrow_limit); this job needs {}",
                               tenant.name, tenant.in_use, tenant.quota,
                               Plural(*tenant.borrow_limit, "GPU"), Plural(Need(job), "GPU"))});
    }
  };
  auto share = [&](size_t t) {
    return WeightedShare(tenants[t].in_use, tenants[t].history, pool, tenants[t].weight);
  };
  while (true) {
    int best = -1;
    bool best_within = false;
    for (size_t t = 0; t < queues.size(); ++t) {
      skip_over_limit(t);
      if (next[t] >= queues[t].size()) continue;
      const bool within = after(t) <= tenants[t].quota;
      bool better = best < 0;
      if (!better) {
        const SchedJob& job = queues[t][next[t]];
        const SchedJob& other = queues[best][next[best]];
        if (within != best_within) {
          better = within;
        } else if (within) {
          better = Before(job, other);
        } else {
          const double mine = share(t), theirs = share(best);
          better = mine != theirs ? mine < theirs : Before(job, other);
        }
      }
      if (better) {
        best = static_cast<int>(t);
        best_within = within;
      }
    }
    if (best < 0) return;
    const SchedJob job = queues[best][next[best]++];
    SchedTenant& tenant = tenants[best];
    const size_t placed_before = result.placements.size();
    const Pass::Outcome outcome = pass.Consider(job, result);
    if (outcome == Pass::Outcome::kPlaced) {
      const Placement& p = result.placements[placed_before];
      tenant.in_use += static_cast<uint32_t>(p.nodes.size()) * job.gpus_per_node;
    } else if (outcome == Pass::Outcome::kWaits && !best_within) {
      std::string& reason = result.waiting.back().reason;
      reason = fmt::format("{} uses {} of its {}-GPU quota and no idle GPUs can be borrowed for "
                           "this job ({})",
                           tenant.name, tenant.in_use, tenant.quota, reason);
    }
  }
}

}  // namespace

uint32_t PoolGpus(const std::vector<SchedNode>& nodes) {
  uint32_t pool = 0;
  for (const SchedNode& n : nodes) {
    if (n.schedulable) pool += n.total_gpus;
  }
  return pool;
}

SchedResult Schedule(const std::vector<SchedNode>& nodes, const std::vector<SchedRunning>& running,
                     std::vector<SchedJob> jobs, absl::Time now, const SchedPolicy& policy) {
  SchedResult result;
  Pass pass(nodes, running, now);
  if (policy.quotas) {
    ScheduleWithQuotas(pass, PoolGpus(nodes), policy, std::move(jobs), result);
    return result;
  }
  std::sort(jobs.begin(), jobs.end(), Before);
  for (const SchedJob& job : jobs) pass.Consider(job, result);
  return result;
}

}  // namespace sublet::coordinator
