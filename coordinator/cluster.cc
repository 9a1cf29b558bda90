#include "coordinator/cluster.h"

#include <algorithm>

#include "common/duration.h"
#include "common/log.h"
#include "common/plural.h"
#include "coordinator/accounting.h"
#include "fmt/format.h"

namespace sublet::coordinator {

Cluster::Cluster(Store& store, const Clock& clock, const Config& config)
    : store_(store), clock_(clock), config_(config) {}

absl::Status Cluster::Recover() {
  std::vector<std::string> tenants = config_.TenantNames();
  SUBLET_ASSIGN_OR_RETURN(tenant_numbers_, store_.NumberTenants(tenants));
  SUBLET_ASSIGN_OR_RETURN(Store::Snapshot snap, store_.Load());
  jobs_.clear();
  nodes_.clear();
  stray_ranks_.clear();
  for (Job& job : snap.jobs) {
    uint64_t id = job.id;
    jobs_.emplace(id, std::move(job));
  }
  Reindex();
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

// What is derived from the jobs alone: the ledger and the open-job counts.
void Cluster::Reindex() {
  ledger_.Clear();
  open_jobs_.clear();
  for (const auto& [id, job] : jobs_) {
    ledger_.Update(job);
    if (!IsFinal(job.state)) ++open_jobs_[job.tenant];
  }
}

// The store holds no connections, heartbeats, progress or strays: they are
// carried over for the nodes and attempts that are still there.
absl::Status Cluster::Reload() {
  std::map<uint64_t, Job> old_jobs = std::move(jobs_);
  std::map<std::string, Node> old_nodes = std::move(nodes_);
  std::map<std::string, uint32_t> strays = stray_ranks_;
  absl::Status recovered = Recover();
  if (!recovered.ok()) {
    jobs_ = std::move(old_jobs);
    nodes_ = std::move(old_nodes);
    stray_ranks_ = std::move(strays);
    Reindex();
    return recovered;
  }
  for (auto& [name, node] : nodes_) {
    auto it = old_nodes.find(name);
    if (it == old_nodes.end() || it->second.incarnation != node.incarnation) continue;
    node.peer = it->second.peer;
    node.last_seen = it->second.last_seen;
    node.free_ports = it->second.free_ports;
    node.gpus = it->second.gpus;
    node.isolation = it->second.isolation;
  }
  for (auto& [id, job] : jobs_) {
    auto it = old_jobs.find(id);
    if (it == old_jobs.end() || it->second.attempt != job.attempt) continue;
    job.deadline_noted = it->second.deadline_noted;
    for (size_t r = 0; r < job.ranks.size() && r < it->second.ranks.size(); ++r) {
      job.ranks[r].progress = it->second.ranks[r].progress;
      job.ranks[r].step_time = it->second.ranks[r].step_time;
      job.ranks[r].exit_message = it->second.ranks[r].exit_message;
    }
  }
  for (const auto& [name, count] : strays) {
    if (nodes_.count(name)) stray_ranks_[name] = count;
  }
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
  Log(LogLevel::kInfo, kind,
      {{"job", job.id}, {"attempt", job.attempt}, {"who", who}, {"msg", message}});
  return store_.AppendEvent(job.id, e);
}

// Also the one place that sees an attempt's last rank go: its GPU-seconds
// are added to the job's account then.
absl::Status Cluster::Save(Job& job) {
  if (ledger_.Update(job)) {
    job.gpu_seconds += AttemptGpuSeconds(job, clock_.Now());
    job.gpu_seconds_borrowed += AttemptBorrowedGpuSeconds(job, clock_.Now());
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
  const protocols::SpecLimits limits;
  SUBLET_RETURN_IF_ERROR(protocols::ValidateJobSpec(spec, limits));
  protocols::ArraySpec array;  // no indices: one job
  if (!spec.array.empty()) {
    SUBLET_ASSIGN_OR_RETURN(array, protocols::ParseArraySpec(spec.array, limits));
  }
  const protocols::Priority allowed =
      AllowedPriority(config_.PolicyOf(tenant), config_.policies_configured);
  if (spec.priority > allowed) {
    return absl::InvalidArgumentError(fmt::format(
        "priority: {} is above tenant {}'s max_priority ({}) in the coordinator's config",
        protocols::PriorityName(spec.priority), tenant, protocols::PriorityName(allowed)));
  }
  const std::vector<uint32_t>& indices = array.indices;
  const size_t count = indices.empty() ? 1 : indices.size();
  const uint32_t limit = config_.max_jobs_per_tenant;
  if (limit > 0 && open_jobs_[tenant] + count > limit) {
    return absl::ResourceExhaustedError(fmt::format(
        "tenant {} already has {} jobs that have not ended{} (max_jobs_per_tenant: {}); wait for "
        "some to finish or cancel them", tenant, open_jobs_[tenant],
        count > 1 ? fmt::format(", and this array adds {}", count) : "", limit));
  }
  uint32_t largest = LargestNodeGpus();
  if (largest > 0 && spec.gpus_per_node > largest) {
    return absl::InvalidArgumentError(
        fmt::format("resources.gpus_per_node: {} is more than any node has (largest: {})",
                    spec.gpus_per_node, Plural(largest, "GPU")));
  }
  SUBLET_RETURN_IF_ERROR(CheckDependencies(tenant, spec.depends_on));
  if (count > 1) {
    // Every task stores its spec: bound what one submission writes.
    const size_t bytes = protocols::JobSpecToYaml(spec).size() * count;
    if (bytes > limits.max_array_spec_bytes) {
      return absl::InvalidArgumentError(fmt::format(
          "array: {} tasks of this spec would store {} bytes, more than the limit of {}; use "
          "fewer tasks or a smaller spec", count, bytes, limits.max_array_spec_bytes));
    }
  }
  const uint64_t first = next_job_id_;
  for (size_t t = 0; t < count; ++t) {
    Job job;
    job.id = next_job_id_;
    job.tenant = tenant;
    job.spec = spec;
    job.submit_time = clock_.Now();
    job.reason = "waiting for the scheduler";
    std::string array_note;  // for the event
    if (!indices.empty()) {
      job.array_id = first;
      job.array_index = indices[t];
      job.array_size = static_cast<uint32_t>(indices.size());  // as SetArrayShape would
      job.array_max_running = array.max_running;
      array_note = fmt::format("; array job {}, index {}", first, job.array_index);
    }
    SUBLET_RETURN_IF_ERROR(store_.InsertJob(job));
    SUBLET_RETURN_IF_ERROR(Event(job, "submitted", tenant,
                                 fmt::format("{} x {}, priority {}{}",
                                             Plural(job.spec.nodes, "node"),
                                             Plural(job.spec.gpus_per_node, "GPU"),
                                             protocols::PriorityName(job.spec.priority), array_note)));
    ++next_job_id_;
    ++open_jobs_[tenant];
    uint64_t id = job.id;
    jobs_.emplace(id, std::move(job));
  }
  sched_dirty_ = true;
  return first;
}

// A dependency names a job of the same tenant (another tenant's job is "not
// found", as everywhere) that can still come to satisfy it.
absl::Status Cluster::CheckDependencies(const std::string& tenant,
                                        const std::vector<protocols::Dependency>& deps) {
  std::map<uint64_t, DependencyTarget> targets;
  for (size_t i = 0; i < deps.size(); ++i) {
    const Job* target = FindJob(deps[i].job);
    if (!target || target->tenant != tenant) {
      return absl::NotFoundError(
          fmt::format("depends_on[{}].job: job {} not found", i, deps[i].job));
    }
    const DependencyVerdict verdict =
        JudgeDependency(deps[i], TargetOf(deps[i].job, targets));
    if (verdict.state == DependencyState::kNever) {
      return absl::InvalidArgumentError(fmt::format(
          "depends_on[{}]: {}, so when: {} can never hold", i, verdict.what,
          protocols::DependencyWhenName(deps[i].when)));
    }
  }
  return absl::OkStatus();
}

// How job `id` stands as a dependency: an array's id stands for all its tasks
// (ids id .. id + array_size - 1, given at one submission). `cache` keeps what
// was counted, so a pass counts each array once.
const DependencyTarget& Cluster::TargetOf(uint64_t id,
                                          std::map<uint64_t, DependencyTarget>& cache) const {
  auto [it, fresh] = cache.try_emplace(id);
  DependencyTarget& t = it->second;
  if (!fresh) return t;
  t.id = id;
  const Job* job = FindJob(id);
  if (!job) {  // cannot happen: jobs are never deleted
    t.ended = 1;
    t.state = "not found";
    return t;
  }
  t.state = std::string(JobStateName(job->state));
  t.array = job->array_id == id && job->array_size > 1;
  t.tasks = t.array ? job->array_size : 1;
  for (auto task = jobs_.find(id); task != jobs_.end() && task->first < id + t.tasks; ++task) {
    if (!IsFinal(task->second.state)) continue;
    ++t.ended;
    if (task->second.state == JobState::kSucceeded) ++t.succeeded;
  }
  return t;
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
  if (!IsFinal(job.state) && open_jobs_[job.tenant] > 0) --open_jobs_[job.tenant];
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
                                 job.ranks.size() == 1
                                     ? std::string("the rank exited 0")
                                     : fmt::format("all {} ranks exited 0", job.ranks.size())));
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
    AccountLostWork(job, /*acknowledged=*/true);
    std::string msg = fmt::format("rank {} on {} checkpointed for preemption (exit 75)", cause.rank,
                                  cause.node);
    SUBLET_RETURN_IF_ERROR(Event(job, "preempted", who, msg));
    return Requeue(job, msg + "; requeued");
  }
  if (code == kExitNodeLost) {
    std::string msg = fmt::format("node {} was lost while running rank {}", cause.node, cause.rank);
    job.resume_step = job.last_checkpoint_step;
    SUBLET_RETURN_IF_ERROR(Event(job, "node_lost", who, msg));
    return Requeue(job, msg + "; requeued (does not count against max_restarts)");
  }
  std::string msg = ExitSignal(code) != 0
                        ? fmt::format("rank {} on {} was killed by signal {} (exit {})", cause.rank,
                                      cause.node, ExitSignal(code), code)
                        : fmt::format("rank {} on {} exited with code {}", cause.rank,
                                      cause.node, code);
  if (!cause.exit_message.empty()) msg += ": " + cause.exit_message;
  SUBLET_RETURN_IF_ERROR(Event(job, "rank_failed", who, msg));
  return FailAttempt(job, msg);
}

// base * 2^(restart-1), at most max.
absl::Duration Cluster::RestartBackoff(uint32_t restart) const {
  absl::Duration backoff = config_.restart_backoff_base;
  for (uint32_t i = 1; i < restart && backoff < config_.restart_backoff_max; ++i) backoff *= 2;
  return std::min(backoff, config_.restart_backoff_max);
}

// The attempt failed for `why` (a rank failed, or the job stopped making
// progress): restart the gang if max_restarts allows, else fail the job.
absl::Status Cluster::FailAttempt(Job& job, const std::string& msg) {
  if (job.restarts < job.spec.max_restarts) {
    job.restarts++;
    // The next attempt resumes from the newest committed checkpoint, as
    // after a preemption (a later report of a commit moves it on).
    job.resume_step = job.last_checkpoint_step;
    const absl::Duration backoff = RestartBackoff(job.restarts);
    job.not_before = backoff > absl::ZeroDuration() ? clock_.Now() + backoff
                                                    : absl::InfinitePast();
    SUBLET_RETURN_IF_ERROR(Event(
        job, "restarting", "scheduler",
        fmt::format("restart {} of {}: the whole gang is stopped and placed again{}; {}",
                    job.restarts, job.spec.max_restarts,
                    backoff > absl::ZeroDuration()
                        ? fmt::format(" after a backoff of {}", sublet::FormatDuration(backoff))
                        : "",
                    job.resume_step >= 0 ? fmt::format("resumes from step {}", job.resume_step)
                                         : "restarts from the beginning (no checkpoint)")));
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

uint32_t Cluster::FreeGpus(const Node& node) const {
  return static_cast<uint32_t>(ledger_.Free(node.name, static_cast<uint32_t>(node.gpus.size())).size());
}

uint32_t Cluster::LargestNodeGpus() const {
  uint32_t largest = 0;
  for (const auto& [name, node] : nodes_) {
    if (node.state != NodeState::kLost) largest = std::max(largest, static_cast<uint32_t>(node.gpus.size()));
  }
  return largest;
}

}  // namespace sublet::coordinator
