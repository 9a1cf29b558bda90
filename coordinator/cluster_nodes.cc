// Cluster: the worker side. Reports from workers, the desired state sent back
// to them (with each rank's environment from rank_env.h), and lost nodes.
#include "common/log.h"
#include "coordinator/cluster.h"
#include "protocols/progress.h"
#include "coordinator/rank_env.h"
#include "fmt/format.h"

namespace sublet::coordinator {

// Protocol, per report:
//  1. A new incarnation means the worker process restarted: the ranks it was
//     given before are gone, so they count as lost (the gang restarts).
//  2. Node facts (GPUs, address, ports) and liveness are refreshed; a lost
//     node that reports again is ready again.
//  3. Each reported exit is applied once (idempotent) and acknowledged, so
//     the worker can forget it. Exits of old attempts are acknowledged only.
//  4. Ranks the worker runs but we no longer want are counted as strays: the
//     sync tells the worker to stop them, and until then no new work lands
//     on the node.
//  5. The reply is the node's desired state.
absl::StatusOr<protocols::WorkerSync> Cluster::OnWorkerReport(
    const protocols::WorkerReport& report, const std::string& peer) {
  if (report.node.empty() || report.incarnation.empty()) {
    return absl::InvalidArgumentError("worker report: node and incarnation are required");
  }
  if (auto known = nodes_.find(report.node);
      known != nodes_.end() && known->second.state != NodeState::kLost &&
      !known->second.instance.empty() && known->second.instance != report.instance) {
    // Another worker claims a node that is connected: refuse it, or it would
    // take over the node and restart the jobs running there.
    Log(LogLevel::kWarn, "registration_refused",
        {{"node", report.node}, {"instance", report.instance},
         {"connected_instance", known->second.instance}});
    absl::Status refused = absl::FailedPreconditionError(fmt::format(
        "node {} is connected from another worker (instance {}); this worker (instance {}) "
        "must use another --name, or wait until that one has been gone for the heartbeat "
        "timeout",
        report.node, known->second.instance, report.instance.empty() ? "none" : report.instance));
    // Audited once per claiming instance, however often it reports.
    std::string& audited = refused_instances_[report.node];
    if (audited != report.instance) {
      audited = report.instance;
      NoteRefusal("worker:" + report.node, "registration_refused",
                  fmt::format("refused: {}; the refused worker gives address {}",
                              std::string(refused.message()),
                              report.address.empty() ? "none" : report.address));
    }
    return refused;
  }
  auto [it, inserted] = nodes_.try_emplace(report.node);
  Node& node = it->second;
  bool restarted = !inserted && node.incarnation != report.incarnation;
  bool changed = inserted || restarted || node.gpus.size() != report.gpus.size() ||
                 node.address != report.address || node.state == NodeState::kLost ||
                 node.instance != report.instance;
  if (restarted) {
    Log(LogLevel::kWarn, "worker_restarted", {{"node", report.node}});
    SUBLET_RETURN_IF_ERROR(FailRanksOnNode(report.node, "its worker restarted"));
  }
  if (node.state == NodeState::kLost) {
    Log(LogLevel::kInfo, "node_back", {{"node", report.node}});
    node.state = node.reclaim_id != 0 ? NodeState::kDraining : NodeState::kReady;
  }
  if (inserted) Log(LogLevel::kInfo, "node_registered", {{"node", report.node},
                                                          {"gpus", report.gpus.size()}});
  node.name = report.node;
  node.incarnation = report.incarnation;
  node.gpus = report.gpus;
  node.address = report.address;
  node.instance = report.instance;
  node.isolation = report.isolation;
  // A node recovered from the store is unschedulable until its worker
  // reports (no peer to send work to); a pass made before that left jobs
  // waiting, so the first report must make another.
  if (node.peer.empty() && !peer.empty()) sched_dirty_ = true;
  node.peer = peer;
  node.last_seen = clock_.Now();
  node.free_ports = report.free_ports;
  if (changed) {
    SUBLET_RETURN_IF_ERROR(store_.SaveNode(node));
    sched_dirty_ = true;
  }

  std::vector<protocols::RankKey> acked;
  uint32_t strays = 0;
  for (const protocols::RankStatus& rs : report.ranks) {
    Job* job = nullptr;
    if (auto j = jobs_.find(rs.key.job_id); j != jobs_.end()) job = &j->second;
    RankRecord* rank = nullptr;
    if (job && job->attempt == rs.key.attempt && rs.key.rank < job->ranks.size() &&
        job->ranks[rs.key.rank].node == node.name &&
        job->ranks[rs.key.rank].incarnation == node.incarnation) {
      rank = &job->ranks[rs.key.rank];
    }
    if (rank && rs.progress.time_unix_ms > 0) {
      SUBLET_RETURN_IF_ERROR(OnProgress(*job, *rank, rs.progress));
    }
    if (rs.exited) {
      acked.push_back(rs.key);
      if (rank) {
        rank->exit_message = rs.message;
        SUBLET_RETURN_IF_ERROR(OnRankExit(*job, *rank, rs.exit_code, "worker:" + node.name));
      }
    } else if (!rank || rank->exited || !job->WantsRanks()) {
      ++strays;
    }
  }
  if (stray_ranks_[node.name] != strays) sched_dirty_ = true;
  stray_ranks_[node.name] = strays;
  SUBLET_RETURN_IF_ERROR(AdvanceReclaims());
  protocols::WorkerSync sync = SyncFor(node);
  sync.acked_exits = std::move(acked);
  return sync;
}

// A rank's own report of its progress. The job's last committed checkpoint
// is what rank 0 says (it commits after every rank has written its shards);
// it is durable, since a resume starts from it.
absl::Status Cluster::OnProgress(Job& job, RankRecord& rank, const protocols::Progress& progress) {
  if (progress.step > rank.progress.step) rank.step_time = absl::FromUnixMillis(progress.time_unix_ms);
  protocols::MergeProgress(rank.progress, progress);
  if (rank.rank != 0 || progress.checkpoint_step <= job.last_checkpoint_step) {
    return absl::OkStatus();
  }
  job.last_checkpoint_step = progress.checkpoint_step;
  job.last_checkpoint_time = absl::FromUnixMillis(progress.time_unix_ms);
  if (progress.checkpoint_bytes > 0) job.checkpoint_bytes = progress.checkpoint_bytes;
  if (progress.checkpoint_persist_s > 0) job.checkpoint_persist_s = progress.checkpoint_persist_s;
  if (job.state == JobState::kPreempting) {
    if (ReclaimVictim* v = VictimOf(job)) v->checkpoint_step = progress.checkpoint_step;
  } else if (job.state == JobState::kPending && !job.HasLiveRanks() && job.attempt > 0 &&
             job.resume_step < progress.checkpoint_step) {
    // The report of the checkpoint a rank committed just before it exited
    // (75, or a failure) came after its exit: the resume starts from it.
    job.resume_step = progress.checkpoint_step;
    SUBLET_RETURN_IF_ERROR(Event(job, "checkpoint", "worker:" + rank.node,
                                 fmt::format("late report: resumes from step {}",
                                             job.resume_step)));
    for (auto& [id, r] : reclaims_) {
      for (ReclaimVictim& v : r.victims) {
        if (v.job_id != job.id || v.checkpoint_step >= progress.checkpoint_step) continue;
        v.checkpoint_step = progress.checkpoint_step;
        SUBLET_RETURN_IF_ERROR(store_.SaveReclaim(r));
      }
    }
  }
  return Save(job);
}

protocols::WorkerSync Cluster::SyncFor(const Node& node) const {
  protocols::WorkerSync sync;
  sync.incarnation = node.incarnation;
  sync.stop_grace_ms = static_cast<uint32_t>(absl::ToInt64Milliseconds(config_.stop_grace));
  for (uint64_t id : ledger_.live_jobs()) {
    const Job& job = jobs_.at(id);
    if (!job.WantsRanks()) continue;
    const bool notice = job.state == JobState::kPreempting;
    for (const RankRecord& r : job.ranks) {
      if (r.node != node.name || r.exited || r.incarnation != node.incarnation) continue;
      protocols::RankKey key{job.id, job.attempt, r.rank};
      auto number = tenant_numbers_.find(job.tenant);
      sync.desired.push_back({key, RankCommand(job, r), RankEnv(job, r, config_), r.gpus,
                              job.tenant, number == tenant_numbers_.end() ? 0 : number->second,
                              config_.storage_root});
      if (notice) {
        sync.notices.push_back(
            {key, absl::ToUnixMillis(job.preempt_deadline),
             PreemptionCause(job),
             static_cast<uint32_t>(protocols::PreemptionSignalNumber(job.spec.preemption_signal))});
      }
    }
  }
  return sync;
}

// Every live rank on `node` ends with kExitNodeLost, except those given to the
// node's current incarnation when it is still the same worker.
absl::Status Cluster::FailRanksOnNode(const std::string& node, const std::string& why) {
  const std::set<uint64_t>& live = ledger_.live_jobs();
  std::vector<uint64_t> ids(live.begin(), live.end());
  for (uint64_t id : ids) {
    Job& job = jobs_.at(id);
    for (RankRecord& r : job.ranks) {
      if (r.node != node || r.exited) continue;
      SUBLET_RETURN_IF_ERROR(
          OnRankExit(job, r, kExitNodeLost, fmt::format("scheduler ({} {})", node, why)));
    }
  }
  return absl::OkStatus();
}

}  // namespace sublet::coordinator
