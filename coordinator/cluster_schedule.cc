// Cluster: time and placement. Timeouts (silent nodes, hung attempts, time
// limits, reclaim deadlines), scheduling passes, and starting an attempt on
// the nodes a pass chose. The job's directories are the worker's to create:
// Cluster does no I/O.
#include <algorithm>

#include "absl/strings/str_join.h"
#include "common/duration.h"
#include "common/log.h"
#include "common/plural.h"
#include "coordinator/accounting.h"
#include "coordinator/cluster.h"
#include "coordinator/fairness.h"
#include "coordinator/scheduler.h"
#include "fmt/format.h"

namespace sublet::coordinator {
namespace {

// The index of `tenant` in the policy's tenants (their count when absent).
uint32_t PolicyIndex(const SchedPolicy& policy, const std::string& tenant) {
  // Tenants are sorted by name (UsageByTenant is a map).
  auto it = std::lower_bound(policy.tenants.begin(), policy.tenants.end(), tenant,
                             [](const SchedTenant& t, const std::string& name) {
                               return t.name < name;
                             });
  if (it == policy.tenants.end() || it->name != tenant) {
    return static_cast<uint32_t>(policy.tenants.size());
  }
  return static_cast<uint32_t>(it - policy.tenants.begin());
}

}  // namespace

absl::Status Cluster::CheckTimeouts() {
  absl::Time now = clock_.Now();
  for (auto& [name, node] : nodes_) {
    // A reclaimed node belongs to the internal team: its worker may go.
    if (node.state == NodeState::kLost || node.state == NodeState::kReclaimed ||
        now - node.last_seen <= config_.heartbeat_timeout) {
      continue;
    }
    node.state = NodeState::kLost;
    node.peer.clear();
    Log(LogLevel::kWarn, "node_lost", {{"node", name},
                                       {"silent_for", sublet::FormatDuration(now - node.last_seen)}});
    SUBLET_RETURN_IF_ERROR(store_.SaveNode(node));
    SUBLET_RETURN_IF_ERROR(FailRanksOnNode(name, "heartbeat timeout"));
    sched_dirty_ = true;
  }
  for (auto& [id, job] : jobs_) {
    // A backoff that ran out: the job may be placed again.
    if (job.state == JobState::kPending && job.not_before != absl::InfinitePast() &&
        job.not_before <= now) {
      job.not_before = absl::InfinitePast();
      sched_dirty_ = true;
    }
    if (job.state != JobState::kRunning || job.stopping) continue;
    SUBLET_RETURN_IF_ERROR(CheckProgress(job, now));
    if (job.state != JobState::kRunning || job.stopping) continue;
    absl::Duration limit = job.spec.time_limit;
    if (limit <= absl::ZeroDuration() || now - job.start_time <= limit) continue;
    std::string msg = fmt::format("time limit {} exceeded", sublet::FormatDuration(limit));
    SUBLET_RETURN_IF_ERROR(Event(job, "time_limit", "scheduler", msg));
    SUBLET_RETURN_IF_ERROR(Finish(job, JobState::kFailed, msg));
  }
  if (now >= fairness_recheck_) {
    fairness_recheck_ = absl::InfiniteFuture();
    sched_dirty_ = true;
  }
  SUBLET_RETURN_IF_ERROR(CheckPreemptDeadlines(now));
  return AdvanceReclaims();
}

// progress_timeout: the attempt counts as hung when no rank has reported
// progress for that long (measured from the attempt's start until the first
// report), e.g. a rank stuck in a collective that never times out.
absl::Status Cluster::CheckProgress(Job& job, absl::Time now) {
  const absl::Duration timeout = job.spec.progress_timeout;
  if (timeout <= absl::ZeroDuration()) return absl::OkStatus();
  absl::Time last = job.start_time;
  int64_t step = -1;
  for (const RankRecord& r : job.ranks) {
    if (r.progress.time_unix_ms == 0) continue;
    last = std::max(last, absl::FromUnixMillis(r.progress.time_unix_ms));
    step = std::max(step, r.progress.step);
  }
  if (now - last <= timeout) return absl::OkStatus();
  std::string msg =
      step < 0 ? fmt::format("no progress reported within progress_timeout {}",
                             sublet::FormatDuration(timeout))
               : fmt::format("no progress for {} (last step {})", sublet::FormatDuration(timeout),
                             step);
  SUBLET_RETURN_IF_ERROR(Event(job, "hung", "scheduler", msg));
  return FailAttempt(job, msg);
}

absl::Status Cluster::Schedule() {
  sched_dirty_ = false;
  std::vector<SchedNode> sched_nodes;
  std::vector<const Node*> node_ptrs;
  std::map<std::string, uint32_t> index;
  for (const auto& [name, node] : nodes_) {
    SchedNode sn;
    sn.name = name;
    sn.total_gpus = static_cast<uint32_t>(node.gpus.size());
    sn.free_gpus = ledger_.Free(name, sn.total_gpus);
    sn.schedulable = Schedulable(name, node);
    index[name] = static_cast<uint32_t>(sched_nodes.size());
    sched_nodes.push_back(std::move(sn));
    node_ptrs.push_back(&node);
  }
  std::vector<SchedRunning> running;
  // Array tasks that hold GPUs now (running, preempting, or stopping), per
  // array: with `array: ...%N` at most N of them at once.
  std::map<uint64_t, uint32_t> array_active;
  for (uint64_t id : ledger_.live_jobs()) {
    const Job& job = jobs_.at(id);
    if (job.array_id != 0 && job.array_max_running > 0) ++array_active[job.array_id];
    // A preempting job is gone by its deadline (the worker kills what is
    // left then), so a reservation waiting for its GPUs holds until then.
    absl::Time end = job.spec.time_limit > absl::ZeroDuration() && job.state == JobState::kRunning
                         ? job.start_time + job.spec.time_limit
                     : job.state == JobState::kPreempting && !job.stopping
                         ? job.preempt_deadline
                         : absl::InfiniteFuture();
    std::map<uint32_t, uint32_t> per_node;
    for (const RankRecord& r : job.ranks) {
      if (!r.exited && index.count(r.node)) per_node[index[r.node]] += 1;
    }
    for (auto [n, g] : per_node) running.push_back({n, g, end});
  }
  std::map<uint64_t, DependencyTarget> targets;  // counted once per pass
  std::vector<SchedJob> pending;
  const absl::Time now = clock_.Now();
  for (auto& [id, job] : jobs_) {
    if (job.state != JobState::kPending || job.stopping) continue;
    if (!job.spec.depends_on.empty()) {
      SUBLET_ASSIGN_OR_RETURN(bool holds, DependenciesHold(job, targets));
      if (!holds) continue;
    }
    if (job.not_before > now) {
      job.reason = fmt::format(
          "restart backoff: restart {} of {} not before {}", job.restarts, job.spec.max_restarts,
          absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", job.not_before, absl::UTCTimeZone()));
      continue;
    }
    if (job.array_id != 0 && job.array_max_running > 0) {
      // Tasks in index order (ids are), each candidate taking a slot (a
      // task in its restart backoff takes none).
      uint32_t& active = array_active[job.array_id];
      if (active >= job.array_max_running) {
        job.reason = fmt::format("array job {}: {} of its tasks running, at most {} at once "
                                 "(array: {})", job.array_id, active, job.array_max_running,
                                 job.spec.array);
        continue;
      }
      ++active;
    }
    // Elastic: after a preemption the job may resume on fewer nodes, and with
    // elastic.start: any it may also start on fewer.
    uint32_t min_nodes =
        job.preemptions > 0 || job.spec.elastic_start_any ? job.spec.elastic_min_nodes : 0;
    pending.push_back({id, static_cast<int>(job.spec.priority), id, job.spec.nodes,
                       job.spec.gpus_per_node, job.spec.time_limit, min_nodes});
  }
  SchedPolicy policy;
  if (config_.policies_configured) policy = QuotaPolicy(sched_nodes, pending);
  const bool fairness = config_.policies_configured && config_.fairness_preemption;
  std::vector<SchedJob> considered;
  if (fairness) considered = pending;
  SchedResult result =
      coordinator::Schedule(sched_nodes, running, std::move(pending), clock_.Now(), policy);
  for (Waiting& w : result.waiting) jobs_.at(w.job_id).reason = std::move(w.reason);
  // Each tenant's use as the placements add to it, for the borrowed part of
  // each new attempt.
  std::vector<uint32_t> in_use;
  for (const SchedTenant& t : policy.tenants) in_use.push_back(t.in_use);
  std::map<uint64_t, uint32_t> tenant_of;
  for (const SchedJob& j : considered) tenant_of[j.id] = j.tenant;
  for (const Placement& p : result.placements) {
    std::vector<const Node*> chosen;
    for (uint32_t n : p.nodes) chosen.push_back(node_ptrs[n]);
    Job& job = jobs_.at(p.job_id);
    uint32_t gpus = 0;
    for (const auto& g : p.gpus) gpus += static_cast<uint32_t>(g.size());
    job.attempt_borrowed_gpus = 0;
    if (config_.policies_configured) {
      const uint32_t t = PolicyIndex(policy, job.tenant);
      if (t < in_use.size()) {
        const uint32_t quota = policy.tenants[t].quota;
        const uint32_t after = in_use[t] + gpus;
        job.attempt_borrowed_gpus = after <= quota ? 0 : std::min(gpus, after - quota);
        in_use[t] = after;
      }
    }
    SUBLET_RETURN_IF_ERROR(StartAttempt(job, chosen, p.gpus));
  }
  if (fairness) {
    SUBLET_RETURN_IF_ERROR(PreemptForFairness(sched_nodes, std::move(policy), considered,
                                              result.placements));
  }
  return absl::OkStatus();
}

absl::Status Cluster::PreemptForFairness(const std::vector<SchedNode>& nodes, SchedPolicy policy,
                                         const std::vector<SchedJob>& pending,
                                         const std::vector<Placement>& placed) {
  const absl::Time now = clock_.Now();
  fairness_recheck_ = absl::InfiniteFuture();
  // The state after the pass: placed GPUs are taken, their tenants use them.
  std::vector<SchedNode> after = nodes;
  std::set<uint64_t> placed_ids;
  std::map<std::string, uint32_t> index;
  for (uint32_t i = 0; i < nodes.size(); ++i) index[nodes[i].name] = i;
  std::vector<FairnessJob> live;
  for (uint64_t id : ledger_.live_jobs()) {
    const Job& job = jobs_.at(id);
    FairnessJob f;
    f.id = id;
    f.tenant = PolicyIndex(policy, job.tenant);
    f.priority = static_cast<int>(job.spec.priority);
    f.returning = job.state != JobState::kRunning || job.stopping;
    f.eligible_at = job.start_time + config_.fairness_min_runtime;
    f.work_since_checkpoint = WorkSinceCheckpoint(job, now);
    std::map<uint32_t, uint32_t> per_node;
    for (const RankRecord& r : job.ranks) {
      if (!r.exited && index.count(r.node)) per_node[index[r.node]] += 1;
    }
    f.gpus.assign(per_node.begin(), per_node.end());
    live.push_back(std::move(f));
  }
  for (SchedNode& n : after) {
    n.free_gpus = ledger_.Free(n.name, n.total_gpus);
  }
  for (const Placement& p : placed) {
    placed_ids.insert(p.job_id);
    const uint32_t t = PolicyIndex(policy, jobs_.at(p.job_id).tenant);
    for (const auto& g : p.gpus) {
      if (t < policy.tenants.size()) policy.tenants[t].in_use += static_cast<uint32_t>(g.size());
    }
  }
  std::vector<SchedJob> unplaced;
  for (const SchedJob& j : pending) {
    if (!placed_ids.count(j.id)) unplaced.push_back(j);
  }
  FairnessResult result =
      ChooseFairnessPreemptions(after, live, std::move(unplaced), std::move(policy.tenants), now);
  fairness_recheck_ = result.recheck;
  for (auto& [id, reason] : result.waiting) jobs_.at(id).reason = std::move(reason);
  for (const FairnessPreemption& p : result.preemptions) {
    Job& preemptor = jobs_.at(p.preemptor);
    std::vector<std::string> named;
    for (uint64_t v : p.victims) {
      Job& victim = jobs_.at(v);
      named.push_back(fmt::format("{} (tenant {})", v, victim.tenant));
      SUBLET_RETURN_IF_ERROR(PreemptForFairness(victim, preemptor, p.why.at(v)));
    }
    preemptor.reason = fmt::format(
        "within its tenant's quota: preempting borrowers' job{} {} for it; they checkpoint and "
        "exit within {}",
        p.victims.size() == 1 ? "" : "s", absl::StrJoin(named, ", "),
        sublet::FormatDuration(config_.fairness_grace));
    SUBLET_RETURN_IF_ERROR(Event(preemptor, "fairness_preemption", "scheduler",
                                 fmt::format("tenant {} is below its quota: preempting job{} {} "
                                             "so this job can run within it",
                                             preemptor.tenant, p.victims.size() == 1 ? "" : "s",
                                             absl::StrJoin(named, ", "))));
  }
  return absl::OkStatus();
}

std::map<std::string, Cluster::TenantUsage> Cluster::UsageByTenant() const {
  std::map<std::string, TenantUsage> usage;
  for (const std::string& name : config_.TenantNames()) usage[name];
  const absl::Time now = clock_.Now();
  for (const auto& [id, job] : jobs_) {
    TenantUsage& u = usage[job.tenant];
    double used = job.gpu_seconds;
    if (job.HasLiveRanks()) {
      used += AttemptGpuSeconds(job, now);
      for (const RankRecord& r : job.ranks) u.in_use += r.exited ? 0 : r.GpuCount();
    }
    if (job.state == JobState::kPending && !job.stopping) {
      ++u.pending_jobs;
      u.pending_gpus += job.spec.nodes * job.spec.gpus_per_node;
    }
    u.gpu_seconds += used;
    u.gpu_seconds_borrowed += GpuSecondsBorrowed(job, now);
    u.gpu_seconds_lost += job.gpu_seconds_lost;
    // An ended job's GPU-seconds age from its end; an open job's count in full.
    u.decayed_gpu_seconds +=
        used * (IsFinal(job.state) ? DecayFactor(now - job.end_time, config_.fair_share_half_life)
                                   : 1.0);
  }
  return usage;
}

std::map<uint64_t, uint32_t> Cluster::QueuePositions(
    const std::optional<std::string>& tenant) const {
  std::map<std::string, std::vector<std::pair<int, uint64_t>>> queues;  // (-priority, id)
  for (const auto& [id, job] : jobs_) {
    if (job.state != JobState::kPending || job.stopping) continue;
    if (tenant && job.tenant != *tenant) continue;
    queues[job.tenant].push_back({-static_cast<int>(job.spec.priority), id});
  }
  std::map<uint64_t, uint32_t> positions;
  for (auto& [tenant, queue] : queues) {
    std::sort(queue.begin(), queue.end());
    for (size_t i = 0; i < queue.size(); ++i) {
      positions[queue[i].second] = static_cast<uint32_t>(i + 1);
    }
  }
  return positions;
}

bool Cluster::Schedulable(const std::string& name, const Node& node) const {
  auto strays = stray_ranks_.find(name);
  return node.state == NodeState::kReady && !node.peer.empty() &&
         (strays == stray_ranks_.end() || strays->second == 0);
}

std::vector<SchedTenant> Cluster::SchedTenants(const std::map<std::string, TenantUsage>& usage,
                                               uint32_t pool) const {
  std::vector<SchedTenant> tenants;
  std::vector<uint32_t> quotas;
  for (const auto& [name, u] : usage) {
    const TenantPolicy p = config_.PolicyOf(name);
    tenants.push_back({name, p.quota_gpus.value_or(0), p.borrow_limit_gpus, p.weight, u.in_use,
                       HistoryFraction(u.decayed_gpu_seconds, pool, config_.fair_share_half_life)});
    quotas.push_back(tenants.back().quota);
  }
  // Guarantees shrink with the pool (reclaimed, lost or draining nodes).
  quotas = EffectiveQuotas(quotas, pool);
  for (size_t t = 0; t < tenants.size(); ++t) tenants[t].quota = quotas[t];
  return tenants;
}

SchedPolicy Cluster::QuotaPolicy(const std::vector<SchedNode>& nodes,
                                 std::vector<SchedJob>& pending) const {
  SchedPolicy policy;
  policy.quotas = true;
  policy.tenants = SchedTenants(UsageByTenant(), PoolGpus(nodes));
  for (SchedJob& job : pending) job.tenant = PolicyIndex(policy, jobs_.at(job.id).tenant);
  return policy;
}

protocols::TenantListReply Cluster::Tenants(const std::optional<std::string>& only) const {
  protocols::TenantListReply reply;
  reply.policies = config_.policies_configured;
  for (const auto& [name, node] : nodes_) {
    if (Schedulable(name, node)) reply.pool_gpus += static_cast<uint32_t>(node.gpus.size());
  }
  const std::map<std::string, TenantUsage> usage = UsageByTenant();
  // As the scheduler sees them: the quota in force, the history, the share.
  const std::vector<SchedTenant> shares = SchedTenants(usage, reply.pool_gpus);
  auto u = usage.begin();
  for (size_t i = 0; i < shares.size(); ++i, ++u) {
    const SchedTenant& s = shares[i];
    if (only && s.name != *only) continue;
    const TenantPolicy p = config_.PolicyOf(s.name);
    protocols::TenantInfo t;
    t.name = s.name;
    t.quota_gpus = p.quota_gpus;
    t.borrow_limit_gpus = p.borrow_limit_gpus;
    t.weight = p.weight;
    t.max_priority = AllowedPriority(p, config_.policies_configured);
    t.in_use_gpus = s.in_use;
    t.borrowed_gpus = s.in_use > s.quota ? s.in_use - s.quota : 0;
    t.quota_in_force_gpus = s.quota;
    t.pending_jobs = u->second.pending_jobs;
    t.pending_gpus = u->second.pending_gpus;
    t.share = WeightedShare(s.in_use, s.history, reply.pool_gpus, s.weight);
    t.decayed_gpu_seconds = u->second.decayed_gpu_seconds;
    t.gpu_seconds = u->second.gpu_seconds;
    t.gpu_seconds_borrowed = u->second.gpu_seconds_borrowed;
    t.gpu_seconds_lost = u->second.gpu_seconds_lost;
    reply.tenants.push_back(std::move(t));
  }
  return reply;
}

absl::StatusOr<bool> Cluster::DependenciesHold(Job& job,
                                               std::map<uint64_t, DependencyTarget>& targets) {
  std::vector<std::string> waits;
  for (const protocols::Dependency& dep : job.spec.depends_on) {
    const DependencyVerdict verdict = JudgeDependency(dep, TargetOf(dep.job, targets));
    if (verdict.state == DependencyState::kHolds) continue;
    if (verdict.state == DependencyState::kWaiting) {
      waits.push_back(verdict.what);
      continue;
    }
    // Slurm's kill_invalid_depend: a job that can never start is not left
    // pending forever.
    std::string msg = fmt::format("dependency can never hold: {} (depends_on when: {})",
                                  verdict.what, protocols::DependencyWhenName(dep.when));
    SUBLET_RETURN_IF_ERROR(Event(job, "dependency_never", "scheduler", msg));
    SUBLET_RETURN_IF_ERROR(Finish(job, JobState::kCancelled, msg));
    // Jobs that depend on this one see it cancelled in this same pass: they
    // come later in id order.
    targets.erase(job.id);
    if (job.array_id != 0) targets.erase(job.array_id);
    return false;
  }
  if (waits.empty()) return true;
  job.reason = "depends_on: waiting for " + absl::StrJoin(waits, ", ");
  return false;
}

absl::Status Cluster::StartAttempt(Job& job, const std::vector<const Node*>& nodes,
                                   const std::vector<std::vector<uint32_t>>& gpus) {
  job.attempt++;
  job.ranks.clear();
  uint32_t rank = 0;
  std::vector<std::string> names;
  for (size_t n = 0; n < nodes.size(); ++n) {
    names.push_back(nodes[n]->name);
    auto add = [&](uint32_t local, std::vector<uint32_t> held) {
      RankRecord r;
      r.rank = rank++;
      r.node = nodes[n]->name;
      r.incarnation = nodes[n]->incarnation;
      r.local_rank = local;
      r.gpus = std::move(held);
      job.ranks.push_back(std::move(r));
    };
    if (job.spec.Torchrun()) {
      // One torchrun per node, holding all of the node's GPUs; it starts
      // the per-GPU processes itself.
      add(0, gpus[n]);
      continue;
    }
    for (uint32_t local = 0; local < gpus[n].size(); ++local) add(local, {gpus[n][local]});
  }
  AssignPorts(job, nodes_.at(nodes[0]->name));
  job.state = JobState::kRunning;
  job.stopping = false;
  job.start_time = clock_.Now();
  job.reason.clear();
  MarkNodesDirty(job);
  SUBLET_RETURN_IF_ERROR(Save(job));
  std::string joined;
  for (const std::string& n : names) joined += (joined.empty() ? "" : ",") + n;
  std::string resume =
      job.resume_step >= 0 ? fmt::format("; resumes from checkpoint step {}", job.resume_step) : "";
  std::string fewer =
      nodes.size() < job.spec.nodes
          ? fmt::format("; elastic: {} of {}", nodes.size(), Plural(job.spec.nodes, "node"))
          : "";
  return Event(job, "started", "scheduler",
               fmt::format("attempt {} on {} ({}){}{}", job.attempt, joined,
                           job.spec.Torchrun()
                               ? fmt::format("{} x {} processes", Plural(job.ranks.size(), "torchrun"),
                                             job.spec.gpus_per_node)
                               : Plural(job.ranks.size(), "rank"),
                           fewer, resume));
}

// The job's store and MASTER_ADDR live on its first node, at ports that
// node's worker found free; if it offered too few, a fixed range like
// torchrun's default of 29500 is used instead.
void Cluster::AssignPorts(Job& job, Node& first) {
  job.master_addr = first.address.empty() ? "127.0.0.1" : first.address;
  auto take_port = [&](uint32_t fallback) {
    if (first.free_ports.empty()) return fallback;
    uint32_t p = first.free_ports.back();
    first.free_ports.pop_back();
    return p;
  };
  job.master_port = take_port(29500 + static_cast<uint32_t>(job.id % 500) * 2);
  job.rendezvous_port = take_port(job.master_port + 1);
}

}  // namespace sublet::coordinator
