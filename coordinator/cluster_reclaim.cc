// Cluster: the reclaim transaction (DESIGN.md "Reclaim transaction").
//
// Every step is written to the store in the caller's transaction, which
// commits before any reply or worker sync leaves, and every step can be
// resumed from the stored state alone, so a coordinator killed in the middle
// finishes the transaction after its restart:
//  1. StartReclaim stores the reclaim and an audit entry in the same
//     transaction as the drain and the notices: all of it or none.
//  2. It picks the nodes (named, or ChooseVictims for a GPU count) and marks
//     them `draining`, so the scheduler places nothing new there.
//  3. Every job with live ranks there goes `preempting` with the deadline;
//     SyncFor puts a PreemptNotice for each of its ranks into its workers'
//     syncs (every sync, so a restarted coordinator or worker repeats it; the
//     worker delivers each notice once: SIGUSR1 and a control message).
//  4. Rank 0 reports the committed checkpoint step; the ranks exit 75. A
//     worker SIGKILLs what still runs at the deadline.
//  5. When every rank of a victim has exited, OnPreemptingExit requeues it
//     (preemptions + 1, resume from the acknowledged or last committed step;
//     never counted against max_restarts).
//  6. AdvanceReclaims hands a draining node over (`reclaimed`) once no rank
//     runs there; the reclaim is `reclaimed` when all its nodes are.
//  7. Release makes the nodes `ready` again.
#include <algorithm>
#include <csignal>
#include <set>

#include "absl/strings/str_join.h"
#include "common/duration.h"
#include "common/log.h"
#include "common/plural.h"
#include "coordinator/accounting.h"
#include "coordinator/cluster.h"
#include "coordinator/victims.h"
#include "fmt/format.h"

namespace sublet::coordinator {
namespace {

constexpr absl::Duration kMaxDeadline = absl::Hours(24);
// An audit detail quotes what a caller wrote (a reclaim's reason): bounded,
// so the log and `sublet audit`'s reply stay small.
constexpr size_t kMaxAuditDetail = 2000;

// `text` cut to kMaxAuditDetail bytes at a UTF-8 character boundary.
std::string Clip(const std::string& text) {
  if (text.size() <= kMaxAuditDetail) return text;
  size_t end = kMaxAuditDetail;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end) + "...";
}

std::string Seconds(absl::Duration d) {
  const int64_t tenths = absl::ToInt64Milliseconds(d + absl::Milliseconds(50)) / 100;
  return sublet::FormatDuration(absl::Milliseconds(100 * tenths));
}

}  // namespace

const Reclaim* Cluster::FindReclaim(uint64_t id) const {
  auto it = reclaims_.find(id);
  return it == reclaims_.end() ? nullptr : &it->second;
}

absl::Status Cluster::Audit(const std::string& who, const std::string& action,
                            const std::string& detail) {
  Log(LogLevel::kInfo, "audit", {{"who", who}, {"action", action}, {"detail", detail}});
  return store_.AppendAudit({absl::ToUnixMillis(clock_.Now()), who, action, Clip(detail)});
}

void Cluster::NoteRefusal(const std::string& who, const std::string& action,
                          const std::string& detail) {
  refusals_.push_back({absl::ToUnixMillis(clock_.Now()), who, action, detail});
}

absl::Status Cluster::WriteRefusals() {
  std::vector<Store::AuditEntry> refusals = std::move(refusals_);
  refusals_.clear();
  for (const Store::AuditEntry& e : refusals) {
    Log(LogLevel::kInfo, "audit", {{"who", e.who}, {"action", e.action}, {"detail", e.detail}});
    SUBLET_RETURN_IF_ERROR(store_.AppendAudit({e.time_unix_ms, e.who, e.action, Clip(e.detail)}));
  }
  return absl::OkStatus();
}

// The nodes a request takes. For a GPU count, `why` receives each victim's
// reason; for named nodes the caller writes it.
absl::StatusOr<std::vector<std::string>> Cluster::ReclaimNodes(
    const protocols::ReclaimRequest& request, std::map<uint64_t, std::string>& why) {
  if (!request.nodes.empty()) {
    std::set<std::string> seen;
    for (const std::string& name : request.nodes) {
      const Node* node = FindNode(name);
      if (!node) return absl::NotFoundError(fmt::format("--nodes: node {} not found", name));
      if (!seen.insert(name).second) {
        return absl::InvalidArgumentError(fmt::format("--nodes: {} is named twice", name));
      }
      if (node->reclaim_id != 0) {
        return absl::FailedPreconditionError(fmt::format(
            "--nodes: node {} is already held by reclaim {}", name, node->reclaim_id));
      }
    }
    return request.nodes;
  }
  std::vector<VictimNode> candidates;
  std::map<uint64_t, VictimJob> jobs;
  const absl::Time now = clock_.Now();
  for (const auto& [name, node] : nodes_) {
    if (node.reclaim_id != 0) continue;
    VictimNode vn{name, static_cast<uint32_t>(node.gpus.size()), {}};
    for (uint64_t id : JobsOnNode(name)) {
      vn.jobs.push_back(id);
      const Job& job = jobs_.at(id);
      jobs[id] = {static_cast<int>(job.spec.priority), WorkSinceCheckpoint(job, now)};
    }
    candidates.push_back(std::move(vn));
  }
  SUBLET_ASSIGN_OR_RETURN(VictimChoice choice, ChooseVictims(candidates, jobs, request.gpus));
  why = std::move(choice.why);
  return choice.nodes;
}

absl::StatusOr<uint64_t> Cluster::StartReclaim(const std::string& who,
                                               const protocols::ReclaimRequest& request) {
  if (request.nodes.empty() == (request.gpus == 0)) {
    return absl::InvalidArgumentError("give either --nodes or --gpus (exactly one)");
  }
  if (request.deadline_ms <= 0 || absl::Milliseconds(request.deadline_ms) > kMaxDeadline) {
    return absl::InvalidArgumentError(
        fmt::format("--deadline: must be more than 0 and at most {}", Seconds(kMaxDeadline)));
  }
  if (request.reason.empty()) {
    return absl::InvalidArgumentError(
        "--reason: say why (it goes to the audit log and to every preempted job's events)");
  }
  std::map<uint64_t, std::string> why;
  SUBLET_ASSIGN_OR_RETURN(std::vector<std::string> names, ReclaimNodes(request, why));

  const absl::Time now = clock_.Now();
  Reclaim r;
  r.id = next_reclaim_id_;
  r.who = who;
  r.reason = request.reason;
  r.requested_nodes = request.nodes;
  r.requested_gpus = request.gpus;
  r.created = now;
  r.deadline = now + absl::Milliseconds(request.deadline_ms);
  r.nodes = names;
  SUBLET_RETURN_IF_ERROR(
      Audit(who, "reclaim",
            fmt::format("reclaim {}: nodes {} ({}), deadline {}, reason: {}", r.id,
                        absl::StrJoin(names, ","),
                        request.gpus ? "for " + Plural(request.gpus, "GPU") : "named",
                        Seconds(r.deadline - now), r.reason)));
  ++next_reclaim_id_;
  Reclaim& stored = reclaims_.emplace(r.id, std::move(r)).first->second;

  // 2. Drain.
  std::set<uint64_t> victims;
  for (const std::string& name : names) {
    Node& node = nodes_.at(name);
    node.reclaim_id = stored.id;
    if (node.state != NodeState::kLost) node.state = NodeState::kDraining;
    SUBLET_RETURN_IF_ERROR(store_.SaveNode(node));
    Log(LogLevel::kInfo, "node_draining", {{"node", name}, {"reclaim", stored.id}});
    for (uint64_t id : JobsOnNode(name)) victims.insert(id);
  }
  // 3. Notice every victim.
  for (uint64_t id : victims) {
    Job& job = jobs_.at(id);
    if (!job.WantsRanks()) continue;  // already being stopped for another reason
    std::string reason = why.count(id) ? why[id] : "";
    if (reason.empty()) {
      std::vector<std::string> on;
      for (const RankRecord& rr : job.ranks) {
        if (std::count(names.begin(), names.end(), rr.node) &&
            std::find(on.begin(), on.end(), rr.node) == on.end()) {
          on.push_back(rr.node);
        }
      }
      reason = fmt::format("runs on {}, named by the reclaim", absl::StrJoin(on, ","));
    }
    SUBLET_RETURN_IF_ERROR(Preempt(job, stored, reason));
  }
  sched_dirty_ = true;
  SUBLET_RETURN_IF_ERROR(AdvanceReclaims());
  SUBLET_RETURN_IF_ERROR(store_.SaveReclaim(stored));
  return stored.id;
}

// Sends one job into `preempting` for `reclaim`, and estimates whether it can
// save in time from its last checkpoint's persist time.
absl::Status Cluster::Preempt(Job& job, Reclaim& reclaim, const std::string& why) {
  const absl::Time now = clock_.Now();
  ReclaimVictim v;
  v.job_id = job.id;
  v.tenant = job.tenant;
  v.why = why;
  v.checkpoint_step = job.last_checkpoint_step;
  v.estimated_save_s = job.checkpoint_persist_s > 0 ? job.checkpoint_persist_s : -1;
  const absl::Duration left = reclaim.deadline - now;
  if (v.estimated_save_s > absl::ToDoubleSeconds(left)) {
    reclaim.warnings.push_back(fmt::format(
        "job {}: its last checkpoint ({} bytes) took {:.1f}s to write, and the deadline is {} "
        "away; it may be killed at the deadline and resume from step {}",
        job.id, job.checkpoint_bytes, v.estimated_save_s, Seconds(left), job.last_checkpoint_step));
  }
  reclaim.victims.push_back(v);
  if (job.state == JobState::kPreempting) {
    // Already preempted by another reclaim, or for fairness: the earlier
    // deadline holds, and a reclaim takes over from fairness.
    job.preempt_deadline = std::min(job.preempt_deadline, reclaim.deadline);
    if (job.reclaim_id == 0) {
      job.reclaim_id = reclaim.id;
      job.fairness_for = 0;
    }
  } else {
    job.state = JobState::kPreempting;
    job.reclaim_id = reclaim.id;
    job.preempt_deadline = reclaim.deadline;
    job.deadline_noted = false;
  }
  job.preempt_why = fmt::format("reclaim {} by {} ({}): {}", reclaim.id, reclaim.who,
                                reclaim.reason, why);
  job.reason = fmt::format("preempting for reclaim {}: checkpoint and exit within {}", reclaim.id,
                           Seconds(left));
  MarkNodesDirty(job);
  SUBLET_RETURN_IF_ERROR(Event(job, "preempting", reclaim.who, job.preempt_why +
                               fmt::format("; deadline in {}", Seconds(left))));
  return Save(job);
}

// The same transaction for fairness (fairness.h): the notice, the grace as
// deadline; OnPreemptingExit requeues the job once its ranks have exited.
absl::Status Cluster::PreemptForFairness(Job& job, const Job& preemptor, const std::string& why) {
  const absl::Time now = clock_.Now();
  job.state = JobState::kPreempting;
  job.reclaim_id = 0;
  job.fairness_for = preemptor.id;
  job.preempt_deadline = now + config_.fairness_grace;
  job.deadline_noted = false;
  job.preempt_why = "fairness: " + why;
  job.reason = fmt::format("preempting for fairness (job {} of tenant {}): checkpoint and exit "
                           "within {}",
                           preemptor.id, preemptor.tenant, Seconds(config_.fairness_grace));
  MarkNodesDirty(job);
  SUBLET_RETURN_IF_ERROR(Event(job, "preempting", "scheduler",
                               job.preempt_why + fmt::format("; deadline in {}",
                                                             Seconds(config_.fairness_grace))));
  return Save(job);
}

std::string Cluster::PreemptionCause(const Job& job) const {
  if (job.reclaim_id != 0) return fmt::format("reclaim {}", job.reclaim_id);
  return fmt::format("fairness preemption for job {}", job.fairness_for);
}

ReclaimVictim* Cluster::VictimOf(const Job& job) {
  auto it = reclaims_.find(job.reclaim_id);
  if (it == reclaims_.end()) return nullptr;
  for (ReclaimVictim& v : it->second.victims) {
    if (v.job_id == job.id) return &v;
  }
  return nullptr;
}

// GPU-seconds a resume redoes: the attempt's work after the checkpoint it
// resumes from (all of it when it committed none).
void Cluster::AccountLostWork(Job& job, bool acknowledged) {
  job.gpu_seconds_lost += acknowledged ? AcknowledgedWorkSinceCheckpoint(job, clock_.Now())
                                       : WorkSinceCheckpoint(job, clock_.Now());
  job.resume_step = job.last_checkpoint_step;
}

// A rank of a preempting job exited. Once all have, the job is requeued
// (or done, if it finished meanwhile).
absl::Status Cluster::OnPreemptingExit(Job& job, const std::string& who) {
  if (job.HasLiveRanks()) return Save(job);
  bool all_zero = true, all_75 = true, killed = false;
  for (const RankRecord& r : job.ranks) {
    all_zero = all_zero && r.exit_code == 0;
    all_75 = all_75 && r.exit_code == kExitPreempted;
    killed = killed || r.exit_code == ExitCodeForSignal(SIGKILL);
  }
  ReclaimVictim* victim = VictimOf(job);
  const uint64_t reclaim_id = job.reclaim_id;
  const std::string cause = PreemptionCause(job);
  job.reclaim_id = 0;
  job.fairness_for = 0;
  job.preempt_deadline = absl::InfinitePast();
  if (all_zero) {
    if (victim) victim->state = VictimState::kEnded;
    SUBLET_RETURN_IF_ERROR(Event(job, "succeeded", who, "all ranks exited 0 before checkpointing"));
    SUBLET_RETURN_IF_ERROR(Finish(job, JobState::kSucceeded, "all ranks exited 0"));
  } else {
    job.preemptions++;
    AccountLostWork(job, all_75);
    std::string outcome =
        all_75 ? fmt::format("every rank checkpointed and exited 75; checkpoint step {} acknowledged",
                             job.last_checkpoint_step)
        : killed ? "the deadline passed; the ranks still running were killed"
                 : "the ranks exited without acknowledging a checkpoint";
    if (victim) {
      victim->state = all_75   ? VictimState::kAcknowledged
                      : killed ? VictimState::kKilled
                               : VictimState::kEnded;
      victim->checkpoint_step = job.last_checkpoint_step;
    }
    std::string resume = job.resume_step >= 0 ? fmt::format("resumes from step {}", job.resume_step)
                                              : "restarts from the beginning (no checkpoint)";
    SUBLET_RETURN_IF_ERROR(Event(job, all_75 ? "acknowledged" : "preempt_killed", who,
                                 fmt::format("{}: {}", cause, outcome)));
    SUBLET_RETURN_IF_ERROR(Event(job, "requeued", "scheduler",
                                 fmt::format("preemption {} (does not count against max_restarts); "
                                             "{}", job.preemptions, resume)));
    SUBLET_RETURN_IF_ERROR(
        Requeue(job, fmt::format("preempted ({}); {}", cause, resume)));
  }
  if (auto it = reclaims_.find(reclaim_id); it != reclaims_.end()) {
    SUBLET_RETURN_IF_ERROR(store_.SaveReclaim(it->second));
  }
  return absl::OkStatus();
}

// Step 4's deadline as the coordinator sees it: one event per job; the
// worker does the killing.
absl::Status Cluster::CheckPreemptDeadlines(absl::Time now) {
  const std::set<uint64_t>& live = ledger_.live_jobs();
  for (uint64_t id : std::vector<uint64_t>(live.begin(), live.end())) {
    Job& job = jobs_.at(id);
    if (job.state != JobState::kPreempting || job.deadline_noted || now < job.preempt_deadline) {
      continue;
    }
    job.deadline_noted = true;
    SUBLET_RETURN_IF_ERROR(Event(job, "deadline", "scheduler",
                                 fmt::format("{}: deadline reached; workers kill the ranks still running",
                                             PreemptionCause(job))));
  }
  return absl::OkStatus();
}

// Step 6: nodes with no rank left are handed over.
absl::Status Cluster::AdvanceReclaims() {
  const absl::Time now = clock_.Now();
  for (auto& [id, r] : reclaims_) {
    if (r.state != ReclaimState::kDraining) continue;
    bool all = true;
    for (const std::string& name : r.nodes) {
      Node& node = nodes_.at(name);
      if (node.reclaim_id != id || node.state == NodeState::kReclaimed) continue;
      if (!JobsOnNode(name).empty() || stray_ranks_[name] != 0) {
        all = false;
        continue;
      }
      node.state = NodeState::kReclaimed;
      SUBLET_RETURN_IF_ERROR(store_.SaveNode(node));
      SUBLET_RETURN_IF_ERROR(
          Audit("scheduler", "handover", fmt::format("reclaim {}: node {} reclaimed", id, name)));
    }
    if (!all) continue;
    r.state = ReclaimState::kReclaimed;
    r.reclaimed_time = now;
    Log(LogLevel::kInfo, "reclaimed", {{"reclaim", id},
                                       {"after", Seconds(now - r.created)}});
    SUBLET_RETURN_IF_ERROR(store_.SaveReclaim(r));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint64_t>> Cluster::Release(const std::string& who,
                                                       const protocols::ReleaseRequest& request) {
  if ((request.reclaim_id == 0) == request.nodes.empty()) {
    return absl::InvalidArgumentError("give either a reclaim id or --nodes (exactly one)");
  }
  std::vector<std::string> names;
  if (request.reclaim_id != 0) {
    const uint64_t id = request.reclaim_id;
    const Reclaim* r = FindReclaim(id);
    if (!r) return absl::NotFoundError(fmt::format("reclaim {} not found", request.reclaim_id));
    if (r->state == ReclaimState::kReleased) {
      return absl::FailedPreconditionError(fmt::format("reclaim {} was already released", id));
    }
    for (const std::string& name : r->nodes) {
      if (nodes_.at(name).reclaim_id == id) names.push_back(name);
    }
  } else {
    for (const std::string& name : request.nodes) {
      const Node* node = FindNode(name);
      if (!node) return absl::NotFoundError(fmt::format("--nodes: node {} not found", name));
      if (node->reclaim_id == 0) {
        return absl::FailedPreconditionError(
            fmt::format("--nodes: node {} is not held by a reclaim", name));
      }
      names.push_back(name);
    }
  }
  std::set<uint64_t> touched;
  for (const std::string& name : names) {
    Node& node = nodes_.at(name);
    touched.insert(node.reclaim_id);
    node.reclaim_id = 0;
    node.state = NodeState::kReady;  // a silent worker is marked lost again by CheckTimeouts
    SUBLET_RETURN_IF_ERROR(store_.SaveNode(node));
  }
  const absl::Time now = clock_.Now();
  for (uint64_t id : touched) {
    Reclaim& r = reclaims_.at(id);
    bool any_held = false;
    for (const std::string& name : r.nodes) any_held = any_held || nodes_.at(name).reclaim_id == id;
    if (!any_held) {
      r.state = ReclaimState::kReleased;
      r.released_time = now;
    }
    SUBLET_RETURN_IF_ERROR(store_.SaveReclaim(r));
  }
  SUBLET_RETURN_IF_ERROR(
      Audit(who, "release",
            fmt::format("nodes {} released ({})", absl::StrJoin(names, ","),
                        request.reclaim_id == 0 ? "by name"
                                                : fmt::format("reclaim {}", request.reclaim_id))));
  sched_dirty_ = true;
  return std::vector<uint64_t>(touched.begin(), touched.end());
}

}  // namespace sublet::coordinator
