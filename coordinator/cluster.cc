#include "coordinator/cluster.h"

#include <algorithm>
#include <filesystem>

#include "common/duration.h"
#include "common/log.h"
#include "coordinator/scheduler.h"
#include "fmt/format.h"

namespace sublet::coordinator {

std::string_view JobStateName(JobState state) {
  switch (state) {
    case JobState::kPending: return "pending";
    case JobState::kRunning: return "running";
    case JobState::kPreempting: return "preempting";
    case JobState::kSucceeded: return "succeeded";
    case JobState::kFailed: return "failed";
    case JobState::kCancelled: return "cancelled";
  }
  return "unknown";
}

std::optional<JobState> JobStateFromName(std::string_view name) {
  for (JobState s : {JobState::kPending, JobState::kRunning, JobState::kPreempting,
                     JobState::kSucceeded, JobState::kFailed, JobState::kCancelled}) {
    if (JobStateName(s) == name) return s;
  }
  return std::nullopt;
}

Cluster::Cluster(Store& store, const Clock& clock, const Config& config)
    : store_(store), clock_(clock), config_(config) {}

absl::Status Cluster::Recover() {
  SUBLET_ASSIGN_OR_RETURN(Store::Snapshot snap, store_.Load());
  jobs_.clear();
  nodes_.clear();
  live_jobs_.clear();
  stray_ranks_.clear();
  for (Job& job : snap.jobs) {
    uint64_t id = job.id;
    if (job.HasLiveRanks()) live_jobs_.insert(id);
    jobs_.emplace(id, std::move(job));
  }
  for (Node& node : snap.nodes) {
    // Every node gets a full heartbeat_timeout to report after a restart.
    node.last_seen = clock_.Now();
    std::string name = node.name;
    nodes_.emplace(name, std::move(node));
  }
  reclaims_.clear();
  for (Reclaim& r : snap.reclaims) {
    uint64_t id = r.id;
    reclaims_.emplace(id, std::move(r));
  }
  next_job_id_ = snap.max_job_id + 1;
  next_reclaim_id_ = snap.max_reclaim_id + 1;
  sched_dirty_ = true;
  return absl::OkStatus();
}

const Job* Cluster::FindJob(uint64_t id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

const Node* Cluster::FindNode(const std::string& name) const {
  auto it = nodes_.find(name);
  return it == nodes_.end() ? nullptr : &it->second;
}

absl::Status Cluster::Event(Job& job, const std::string& kind, const std::string& who,
                            const std::string& message) {
  protocols::JobEvent e{absl::ToUnixMillis(clock_.Now()), kind, who, message};
  Log(LogLevel::kInfo, kind, {{"job", job.IdText()}, {"attempt", job.attempt}, {"who", who},
                              {"msg", message}});
  return store_.AppendEvent(job.id, e);
}

// Also the one place that sees an attempt's last rank go: its GPU-seconds
// are added to the job's account then.
absl::Status Cluster::Save(Job& job) {
  if (job.HasLiveRanks()) {
    live_jobs_.insert(job.id);
  } else if (live_jobs_.erase(job.id) > 0 && job.start_time != absl::InfinitePast()) {
    job.gpu_seconds += std::max(0.0, absl::ToDoubleSeconds(clock_.Now() - job.start_time)) *
                       static_cast<double>(job.ranks.size());
  }
  return store_.SaveJob(job);
}

void Cluster::MarkNodesDirty(const Job& job) {
  for (const RankRecord& r : job.ranks) dirty_nodes_.insert(r.node);
}

std::set<std::string> Cluster::TakeDirtyNodes() {
  std::set<std::string> out;
  out.swap(dirty_nodes_);
  return out;
}

absl::StatusOr<uint64_t> Cluster::Submit(const std::string& tenant, protocols::JobSpec spec) {
  SUBLET_RETURN_IF_ERROR(protocols::ValidateJobSpec(spec));
  uint32_t largest = LargestNodeGpus();
  if (largest > 0 && spec.gpus_per_node > largest) {
    return absl::InvalidArgumentError(fmt::format(
        "resources.gpus_per_node: {} is more than any node has (largest: {} GPUs)",
        spec.gpus_per_node, largest));
  }
  Job job;
  job.id = next_job_id_;
  job.tenant = tenant;
  job.spec = std::move(spec);
  job.submit_time = clock_.Now();
  job.reason = "waiting for the scheduler";
  SUBLET_RETURN_IF_ERROR(store_.InsertJob(job));
  SUBLET_RETURN_IF_ERROR(Event(job, "submitted", tenant,
                               fmt::format("{} nodes x {} GPUs, priority {}", job.spec.nodes,
                                           job.spec.gpus_per_node,
                                           protocols::PriorityName(job.spec.priority))));
  ++next_job_id_;
  uint64_t id = job.id;
  jobs_.emplace(id, std::move(job));
  sched_dirty_ = true;
  return id;
}

absl::Status Cluster::Cancel(uint64_t job_id, const std::string& who) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(fmt::format("job {} not found", job_id));
  Job& job = it->second;
  if (IsFinal(job.state)) {
    return absl::FailedPreconditionError(
        fmt::format("job {} already {}", job_id, JobStateName(job.state)));
  }
  SUBLET_RETURN_IF_ERROR(Event(job, "cancelled", who, fmt::format("cancelled by {}", who)));
  return Finish(job, JobState::kCancelled, fmt::format("cancelled by {}", who));
}

// Ends the job for good; live ranks are stopped and still hold their GPUs
// until they have exited.
absl::Status Cluster::Finish(Job& job, JobState state, const std::string& reason) {
  job.state = state;
  job.reason = reason;
  job.end_time = clock_.Now();
  job.stopping = job.HasLiveRanks();
  MarkNodesDirty(job);
  sched_dirty_ = true;
  return Save(job);
}

absl::Status Cluster::Requeue(Job& job, const std::string& reason) {
  job.state = JobState::kPending;
  job.stopping = job.HasLiveRanks();
  job.reason = job.stopping ? fmt::format("{}; waiting for the ranks of attempt {} to exit",
                                          reason, job.attempt)
                            : reason;
  MarkNodesDirty(job);
  sched_dirty_ = true;
  return Save(job);
}

absl::Status Cluster::OnRankExit(Job& job, RankRecord& rank, int32_t code, const std::string& who) {
  if (rank.exited) return absl::OkStatus();
  rank.exited = true;
  rank.exit_code = code;
  if (!job.WantsRanks()) return AfterRanksChanged(job);
  if (job.state == JobState::kPreempting) return OnPreemptingExit(job, who);
  if (code == 0) {
    for (const RankRecord& r : job.ranks) {
      if (!r.exited || r.exit_code != 0) return Save(job);
    }
    SUBLET_RETURN_IF_ERROR(Event(job, "succeeded", who,
                                 fmt::format("all {} ranks exited 0", job.ranks.size())));
    return Finish(job, JobState::kSucceeded, "all ranks exited 0");
  }
  return EndAttempt(job, rank, code, who);
}

// A rank of a live attempt ended other than by success: stop the gang and
// decide between a restart, a requeue that does not count, and failure.
absl::Status Cluster::EndAttempt(Job& job, const RankRecord& cause, int32_t code,
                                 const std::string& who) {
  if (code == kExitPreempted) {
    job.preemptions++;
    AccountLostWork(job);
    std::string msg = fmt::format("rank {} on {} checkpointed for preemption (exit 75)", cause.rank,
                                  cause.node);
    SUBLET_RETURN_IF_ERROR(Event(job, "preempted", who, msg));
    return Requeue(job, msg + "; requeued");
  }
  if (code == kExitNodeLost) {
    std::string msg = fmt::format("node {} was lost while running rank {}", cause.node, cause.rank);
    SUBLET_RETURN_IF_ERROR(Event(job, "node_lost", who, msg));
    return Requeue(job, msg + "; requeued (does not count against max_restarts)");
  }
  std::string msg = code > 128 ? fmt::format("rank {} on {} was killed by signal {} (exit {})",
                                             cause.rank, cause.node, code - 128, code)
                               : fmt::format("rank {} on {} exited with code {}", cause.rank,
                                             cause.node, code);
  if (!cause.exit_message.empty()) msg += ": " + cause.exit_message;
  SUBLET_RETURN_IF_ERROR(Event(job, "rank_failed", who, msg));
  return FailAttempt(job, msg);
}

// The attempt failed for `why` (a rank failed, or the job stopped making
// progress): restart the gang if max_restarts allows, else fail the job.
absl::Status Cluster::FailAttempt(Job& job, const std::string& msg) {
  if (job.restarts < job.spec.max_restarts) {
    job.restarts++;
    SUBLET_RETURN_IF_ERROR(Event(job, "restarting", "scheduler",
                                 fmt::format("restart {} of {}: the whole gang is stopped and "
                                             "placed again", job.restarts, job.spec.max_restarts)));
    return Requeue(job, fmt::format("{}; restart {} of {}", msg, job.restarts,
                                    job.spec.max_restarts));
  }
  SUBLET_RETURN_IF_ERROR(Event(job, "failed", "scheduler",
                               fmt::format("{}; max_restarts ({}) reached", msg,
                                           job.spec.max_restarts)));
  return Finish(job, JobState::kFailed,
                fmt::format("{}; max_restarts ({}) reached", msg, job.spec.max_restarts));
}

// Ranks of an attempt that is no longer wanted have exited: once all have,
// their GPUs are free and a requeued job may be placed again.
absl::Status Cluster::AfterRanksChanged(Job& job) {
  if (job.stopping && !job.HasLiveRanks()) {
    job.stopping = false;
    if (job.state == JobState::kPending) {
      job.reason = "waiting for the scheduler";
    }
    SUBLET_RETURN_IF_ERROR(Event(job, "stopped", "scheduler",
                                 fmt::format("every rank of attempt {} has exited", job.attempt)));
    sched_dirty_ = true;
  }
  return Save(job);
}

absl::Status Cluster::CheckTimeouts() {
  absl::Time now = clock_.Now();
  for (auto& [name, node] : nodes_) {
    // A reclaimed node belongs to the internal team: its worker may go.
    if (node.state == "lost" || node.state == "reclaimed" ||
        now - node.last_seen <= config_.heartbeat_timeout) {
      continue;
    }
    node.state = "lost";
    node.peer.clear();
    Log(LogLevel::kWarn, "node_lost", {{"node", name},
                                       {"silent_for", sublet::FormatDuration(now - node.last_seen)}});
    SUBLET_RETURN_IF_ERROR(store_.SaveNode(node));
    SUBLET_RETURN_IF_ERROR(FailRanksOnNode(name, "heartbeat timeout"));
    sched_dirty_ = true;
  }
  for (auto& [id, job] : jobs_) {
    if (job.state != JobState::kRunning || job.stopping) continue;
    SUBLET_RETURN_IF_ERROR(CheckProgress(job, now));
    if (job.state != JobState::kRunning || job.stopping) continue;
    absl::Duration limit = job.spec.time_limit;
    if (limit <= absl::ZeroDuration() || now - job.start_time <= limit) continue;
    std::string msg = fmt::format("time limit {} exceeded", sublet::FormatDuration(limit));
    SUBLET_RETURN_IF_ERROR(Event(job, "time_limit", "scheduler", msg));
    SUBLET_RETURN_IF_ERROR(Finish(job, JobState::kFailed, msg));
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
  std::map<std::string, std::vector<bool>> busy = HeldGpus();
  for (const auto& [name, node] : nodes_) {
    SchedNode sn;
    sn.name = name;
    sn.total_gpus = static_cast<uint32_t>(node.gpus.size());
    const std::vector<bool>& held = busy[name];
    for (uint32_t g = 0; g < sn.total_gpus; ++g) {
      if (g >= held.size() || !held[g]) sn.free_gpus.push_back(g);
    }
    sn.schedulable = node.state == "ready" && !node.peer.empty() && stray_ranks_[name] == 0;
    index[name] = static_cast<uint32_t>(sched_nodes.size());
    sched_nodes.push_back(std::move(sn));
    node_ptrs.push_back(&node);
  }
  std::vector<SchedRunning> running;
  for (uint64_t id : live_jobs_) {
    const Job& job = jobs_.at(id);
    absl::Time end = job.spec.time_limit > absl::ZeroDuration() && job.state == JobState::kRunning
                         ? job.start_time + job.spec.time_limit
                         : absl::InfiniteFuture();
    std::map<uint32_t, uint32_t> per_node;
    for (const RankRecord& r : job.ranks) {
      if (!r.exited && index.count(r.node)) per_node[index[r.node]] += 1;
    }
    for (auto [n, g] : per_node) running.push_back({n, g, end});
  }
  std::vector<SchedJob> pending;
  for (auto& [id, job] : jobs_) {
    if (job.state != JobState::kPending || job.stopping) continue;
    // Elastic: after a preemption the job may resume on fewer nodes.
    uint32_t min_nodes = job.preemptions > 0 ? job.spec.elastic_min_nodes : 0;
    pending.push_back({job.IdText(), id, static_cast<int>(job.spec.priority), id, job.spec.nodes,
                       job.spec.gpus_per_node, job.spec.time_limit, min_nodes});
  }
  SchedResult result = coordinator::Schedule(sched_nodes, running, std::move(pending), clock_.Now());
  for (Waiting& w : result.waiting) jobs_.at(w.key).reason = std::move(w.reason);
  for (const Placement& p : result.placements) {
    std::vector<const Node*> chosen;
    for (uint32_t n : p.nodes) chosen.push_back(node_ptrs[n]);
    SUBLET_RETURN_IF_ERROR(StartAttempt(jobs_.at(p.key), chosen, p.gpus));
  }
  return absl::OkStatus();
}

absl::Status Cluster::StartAttempt(Job& job, const std::vector<const Node*>& nodes,
                                   const std::vector<std::vector<uint32_t>>& gpus) {
  job.attempt++;
  job.ranks.clear();
  uint32_t rank = 0;
  std::vector<std::string> names;
  for (size_t n = 0; n < nodes.size(); ++n) {
    names.push_back(nodes[n]->name);
    for (uint32_t local = 0; local < gpus[n].size(); ++local) {
      RankRecord r;
      r.rank = rank++;
      r.node = nodes[n]->name;
      r.incarnation = nodes[n]->incarnation;
      r.local_rank = local;
      r.gpus = {gpus[n][local]};
      job.ranks.push_back(std::move(r));
    }
  }
  Node& first = nodes_.at(nodes[0]->name);
  job.master_addr = first.address.empty() ? "127.0.0.1" : first.address;
  // Ports the first node's worker found free; if it offered too few, fall
  // back to a fixed range like torchrun's default of 29500.
  auto take_port = [&](uint32_t fallback) {
    if (first.free_ports.empty()) return fallback;
    uint32_t p = first.free_ports.back();
    first.free_ports.pop_back();
    return p;
  };
  job.master_port = take_port(29500 + static_cast<uint32_t>(job.id % 500) * 2);
  job.rendezvous_port = take_port(job.master_port + 1);
  // Storage is shared by all nodes; the job's checkpoint directory exists
  // before its first rank starts.
  std::error_code ec;
  std::filesystem::create_directories(
      fmt::format("{}/{}/{}/checkpoints", config_.storage_root, job.tenant, job.id), ec);
  if (ec) {
    Log(LogLevel::kWarn, "checkpoint_dir_failed", {{"job", job.IdText()}, {"error", ec.message()}});
  }
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
  std::string fewer = nodes.size() < job.spec.nodes
                          ? fmt::format("; elastic: {} of {} nodes", nodes.size(), job.spec.nodes)
                          : "";
  return Event(job, "started", "scheduler",
               fmt::format("attempt {} on {} ({} ranks){}{}", job.attempt, joined,
                           job.ranks.size(), fewer, resume));
}

uint32_t Cluster::LargestNodeGpus() const {
  uint32_t largest = 0;
  for (const auto& [name, node] : nodes_) {
    if (node.state != "lost") largest = std::max(largest, static_cast<uint32_t>(node.gpus.size()));
  }
  return largest;
}

}  // namespace sublet::coordinator
