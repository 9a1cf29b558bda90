// Coordinator: the tenant/admin API and the log proxy. Authorization rules:
// tenants see, cancel and read the logs of their own jobs only (another
// tenant's job is "not found", so ids reveal nothing); admins see all jobs
// and nodes but own no jobs; the worker token serves only the worker channel.
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "coordinator/coordinator.h"
#include "coordinator/views.h"
#include "fmt/format.h"
#include "protocols/codec.h"
#include "protocols/job_spec.h"

namespace sublet::coordinator {
namespace {

constexpr uint32_t kDefaultAuditEntries = 100;
constexpr uint32_t kMaxAuditEntries = 10'000;
// Well under the 16 MiB frame a client accepts.
constexpr size_t kMaxAuditReplyBytes = 8 << 20;

}  // namespace

using protocols::Body;

absl::StatusOr<Body> Coordinator::HandleApi(const Principal& who, protocols::Envelope& request,
                                            const std::string& peer, bool& deferred) {
  if (who.role == Role::kWorker) {
    return absl::PermissionDeniedError("the worker token cannot use the tenant API");
  }
  Body& body = request.body;
  if (auto* r = std::get_if<protocols::SubmitJobRequest>(&body)) return Submit(who, *r);
  if (auto* r = std::get_if<protocols::ListJobsRequest>(&body)) return ListJobs(who, *r);
  if (auto* r = std::get_if<protocols::GetJobRequest>(&body)) {
    SUBLET_ASSIGN_OR_RETURN(const Job* job, VisibleJob(who, r->job_id));
    SUBLET_ASSIGN_OR_RETURN(protocols::JobInfo info, JobView(*job, store_.get(), clock_.Now()));
    const std::map<uint64_t, uint32_t> positions = cluster_.QueuePositions(job->tenant);
    if (auto it = positions.find(job->id); it != positions.end()) info.queue_position = it->second;
    return protocols::JobReply{std::move(info)};
  }
  if (auto* r = std::get_if<protocols::CancelJobRequest>(&body)) {
    SUBLET_ASSIGN_OR_RETURN(const Job* job, VisibleJob(who, r->job_id));
    SUBLET_RETURN_IF_ERROR(cluster_.Cancel(job->id, who.name));
    SUBLET_ASSIGN_OR_RETURN(protocols::JobInfo info, JobView(*job, nullptr, clock_.Now()));
    return protocols::JobReply{std::move(info)};
  }
  if (std::holds_alternative<protocols::ListNodesRequest>(body)) {
    protocols::NodeListReply reply;
    for (const auto& [name, node] : cluster_.nodes()) {
      reply.nodes.push_back(NodeView(cluster_, node));
    }
    return reply;
  }
  if (auto* r = std::get_if<protocols::ReclaimRequest>(&body)) return StartReclaim(who, *r);
  if (auto* r = std::get_if<protocols::ReleaseRequest>(&body)) return Release(who, *r);
  if (auto* r = std::get_if<protocols::ListReclaimsRequest>(&body)) return ListReclaims(who, *r);
  if (auto* r = std::get_if<protocols::ListAuditRequest>(&body)) return ListAudit(who, *r);
  if (std::holds_alternative<protocols::ListTenantsRequest>(body)) {
    // A tenant sees its own row; an admin every tenant's.
    return cluster_.Tenants(who.role == Role::kAdmin ? std::nullopt
                                                     : std::optional<std::string>(who.name));
  }
  if (auto* r = std::get_if<protocols::ReadLogsRequest>(&body)) {
    SUBLET_RETURN_IF_ERROR(ForwardLogs(who, *r, peer, request.request_id));
    deferred = true;
    return protocols::LogsReply{};
  }
  return absl::InvalidArgumentError("not a request the coordinator serves");
}

absl::StatusOr<Body> Coordinator::Submit(const Principal& who, protocols::SubmitJobRequest& r) {
  if (who.role != Role::kTenant) {
    return absl::PermissionDeniedError(
        fmt::format("{} is an admin; jobs belong to tenants, submit with a tenant token", who.name));
  }
  if (!r.spec_yaml.empty()) {
    // The Python SDK sends the spec as YAML: the same parser as the CLI's,
    // with its limits (the text is untrusted).
    absl::StatusOr<protocols::JobSpec> parsed = protocols::ParseJobSpecYaml(r.spec_yaml);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          fmt::format("job spec: {}", std::string(parsed.status().message())));
    }
    r.spec = *std::move(parsed);
  }
  SUBLET_ASSIGN_OR_RETURN(uint64_t id, cluster_.Submit(who.name, std::move(r.spec)));
  const Job* job = cluster_.FindJob(id);
  return protocols::SubmitJobReply{id, job && job->array_id == id ? job->array_size : 0};
}

// Tenants list their own jobs, admins everyone's. Without `all`, jobs that
// ended more than an hour ago are left out (like squeue next to sacct).
absl::StatusOr<Body> Coordinator::ListJobs(const Principal& who,
                                           const protocols::ListJobsRequest& r) {
  const absl::Time cutoff = clock_.Now() - absl::Hours(1);
  protocols::JobListReply reply;
  const std::map<uint64_t, uint32_t> positions = cluster_.QueuePositions(
      who.role == Role::kTenant ? std::optional<std::string>(who.name) : std::nullopt);
  for (const auto& [id, job] : cluster_.jobs()) {
    if (who.role == Role::kTenant && job.tenant != who.name) continue;
    if (!r.all && IsFinal(job.state) && job.end_time < cutoff) continue;
    SUBLET_ASSIGN_OR_RETURN(protocols::JobInfo info, JobView(job, nullptr, clock_.Now()));
    if (auto it = positions.find(id); it != positions.end()) info.queue_position = it->second;
    reply.jobs.push_back(std::move(info));
  }
  return reply;
}

// Reclaim and release are admin-only. Every call is in the audit log with
// who asked and why, a refused one too (a tenant asking, a node that does
// not exist, more GPUs than there are), with the reason it was refused.
// Refusals go through Cluster::NoteRefusal, so they are written after the
// request's savepoint ended and survive whatever the refusal undid; a store
// failure is not a refusal (the whole turn is retried).
absl::StatusOr<Body> Coordinator::StartReclaim(const Principal& who,
                                               const protocols::ReclaimRequest& r) {
  absl::StatusOr<Body> reply = TryStartReclaim(who, r);
  if (!reply.ok() && store_->failure().ok()) {
    const std::string asked = r.nodes.empty() ? fmt::format("--gpus {}", r.gpus)
                                              : "--nodes " + absl::StrJoin(r.nodes, ",");
    cluster_.NoteRefusal(
        who.name, "reclaim_refused",
        fmt::format("{} (asked: {}; reason given: {})", std::string(reply.status().message()),
                    asked, r.reason.empty() ? "none" : r.reason));
  }
  return reply;
}

absl::StatusOr<Body> Coordinator::TryStartReclaim(const Principal& who,
                                                  const protocols::ReclaimRequest& r) {
  if (who.role != Role::kAdmin) {
    return absl::PermissionDeniedError(
        fmt::format("{} is not an admin: only admins may reclaim capacity", who.name));
  }
  SUBLET_ASSIGN_OR_RETURN(uint64_t id, cluster_.StartReclaim(who.name, r));
  protocols::ReclaimListReply reply;
  reply.reclaims.push_back(ReclaimView(cluster_, *cluster_.FindReclaim(id)));
  return reply;
}

absl::StatusOr<Body> Coordinator::Release(const Principal& who,
                                          const protocols::ReleaseRequest& r) {
  absl::StatusOr<Body> reply = TryRelease(who, r);
  if (!reply.ok() && store_->failure().ok()) {
    const std::string asked = r.reclaim_id != 0 ? fmt::format("reclaim {}", r.reclaim_id)
                                                : "--nodes " + absl::StrJoin(r.nodes, ",");
    cluster_.NoteRefusal(
        who.name, "release_refused",
        fmt::format("{} (asked: {})", std::string(reply.status().message()), asked));
  }
  return reply;
}

absl::StatusOr<Body> Coordinator::TryRelease(const Principal& who,
                                             const protocols::ReleaseRequest& r) {
  if (who.role != Role::kAdmin) {
    return absl::PermissionDeniedError(
        fmt::format("{} is not an admin: only admins may release capacity", who.name));
  }
  SUBLET_ASSIGN_OR_RETURN(std::vector<uint64_t> ids, cluster_.Release(who.name, r));
  protocols::ReclaimListReply reply;
  for (uint64_t id : ids) reply.reclaims.push_back(ReclaimView(cluster_, *cluster_.FindReclaim(id)));
  return reply;
}

// The newest entries that fit kMaxAuditReplyBytes, oldest first.
absl::StatusOr<Body> Coordinator::ListAudit(const Principal& who,
                                            const protocols::ListAuditRequest& r) {
  if (who.role != Role::kAdmin) {
    return absl::PermissionDeniedError(
        fmt::format("{} is not an admin: only admins may read the audit log", who.name));
  }
  if (r.since_ms < 0) return absl::InvalidArgumentError("--since: must not be negative");
  const uint32_t limit = r.limit == 0 ? kDefaultAuditEntries : std::min(r.limit, kMaxAuditEntries);
  const int64_t since = r.since_ms == 0 ? 0 : absl::ToUnixMillis(clock_.Now()) - r.since_ms;
  SUBLET_ASSIGN_OR_RETURN(std::vector<Store::AuditEntry> entries, store_->Audit(since, limit));
  size_t first = entries.size(), bytes = 0;
  while (first > 0) {
    const Store::AuditEntry& e = entries[first - 1];
    bytes += e.who.size() + e.action.size() + e.detail.size() + 32;
    if (bytes > kMaxAuditReplyBytes) break;
    --first;
  }
  protocols::AuditListReply reply;
  for (size_t i = first; i < entries.size(); ++i) {
    Store::AuditEntry& e = entries[i];
    reply.entries.push_back(
        {e.time_unix_ms, std::move(e.who), std::move(e.action), std::move(e.detail)});
  }
  return reply;
}

absl::StatusOr<Body> Coordinator::ListReclaims(const Principal& who,
                                               const protocols::ListReclaimsRequest& r) {
  if (who.role != Role::kAdmin) {
    return absl::PermissionDeniedError(
        fmt::format("{} is not an admin: only admins may list reclaims", who.name));
  }
  protocols::ReclaimListReply reply;
  if (r.reclaim_id != 0) {
    const Reclaim* found = cluster_.FindReclaim(r.reclaim_id);
    if (!found) return absl::NotFoundError(fmt::format("reclaim {} not found", r.reclaim_id));
    reply.reclaims.push_back(ReclaimView(cluster_, *found));
    return reply;
  }
  for (const auto& [id, reclaim] : cluster_.reclaims()) {
    reply.reclaims.push_back(ReclaimView(cluster_, reclaim));
  }
  return reply;
}

// Id 0 names no job (ids start at 1), so it is "not found" like any other.
absl::StatusOr<const Job*> Coordinator::VisibleJob(const Principal& who, uint64_t id) {
  const Job* job = cluster_.FindJob(id);
  if (!job || (who.role == Role::kTenant && job->tenant != who.name)) {
    return absl::NotFoundError(fmt::format("job {} not found", id));
  }
  return job;
}

absl::Status Coordinator::ForwardLogs(const Principal& who, const protocols::ReadLogsRequest& r,
                                      const std::string& peer, uint64_t request_id) {
  SUBLET_ASSIGN_OR_RETURN(const Job* job, VisibleJob(who, r.job_id));
  uint32_t attempt = r.attempt == 0 ? job->attempt : r.attempt;
  if (job->attempt == 0) {
    return absl::FailedPreconditionError(
        fmt::format("job {} has not started yet, so it has no logs", job->id));
  }
  if (attempt > job->attempt) {
    return absl::NotFoundError(fmt::format("job {} has no attempt {} (latest: {})", job->id,
                                           attempt, job->attempt));
  }
  std::vector<RankRecord> ranks = job->ranks;
  if (attempt != job->attempt || ranks.empty()) {
    SUBLET_ASSIGN_OR_RETURN(ranks, store_->Ranks(job->id, attempt));
  }
  if (r.rank >= ranks.size()) {
    return absl::InvalidArgumentError(fmt::format("--rank: job {} has ranks 0..{}", job->id,
                                                  ranks.size() - 1));
  }
  const std::string& node_name = ranks[r.rank].node;
  const Node* node = cluster_.FindNode(node_name);
  if (!node || node->peer.empty() || node->state == NodeState::kLost) {
    return absl::UnavailableError(
        fmt::format("node {} is not connected; its logs cannot be read now", node_name));
  }
  uint64_t proxy_id = next_proxy_id_++;
  pending_logs_[proxy_id] = {peer, request_id, node->peer,
                             clock_.Now() + options_.log_proxy_timeout};
  protocols::Envelope forward;
  forward.request_id = proxy_id;
  forward.body = protocols::ReadRankLogRequest{
      {job->id, attempt, r.rank}, r.offset, std::min<uint32_t>(r.max_bytes, 1 << 20)};
  outbox_.push_back({node->peer, std::move(forward)});
  return absl::OkStatus();
}

void Coordinator::HandleWorkerReply(protocols::Envelope& reply, const std::string& peer) {
  auto it = pending_logs_.find(reply.request_id);
  if (it == pending_logs_.end() || it->second.worker_peer != peer) {
    Log(LogLevel::kDebug, "unexpected_reply", {{"request", reply.request_id}});
    return;
  }
  Reply(it->second.client_peer, it->second.client_request_id, std::move(reply.body));
  pending_logs_.erase(it);
}

void Coordinator::ExpireLogProxies() {
  const absl::Time now = clock_.Now();
  for (auto it = pending_logs_.begin(); it != pending_logs_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    Reply(it->second.client_peer, it->second.client_request_id,
          protocols::ErrorEnvelope(0, absl::UnavailableError(
                                          "the node holding this log did not answer in time"))
              .body);
    it = pending_logs_.erase(it);
  }
}

}  // namespace sublet::coordinator
