#include "client/client.h"

#include <fmt/format.h>

#include <utility>
#include <variant>

#include "protocols/codec.h"

namespace sublet::client {

using protocols::Envelope;

namespace {

absl::Status CheckKey(const ClientOptions& options) {
  if (options.plaintext) return absl::OkStatus();
  if (options.coordinator_key.empty()) {
    return absl::InvalidArgumentError(
        "no coordinator key: pass --coordinator-key KEY or set SUBLET_COORDINATOR_KEY (the "
        "coordinator prints it at start and keeps it in <state-dir>/coordinator.pub; `sublet "
        "up` writes it into the context file)");
  }
  return protocols::ParseCurveKey(options.coordinator_key, "--coordinator-key").status();
}

protocols::ClientSecurity SecurityFor(const ClientOptions& options, const absl::Status& key) {
  if (options.plaintext || !key.ok()) return {};
  return {.server_key = *protocols::ParseCurveKey(options.coordinator_key, "key")};
}

}  // namespace

Client::Client(ClientOptions options)
    : options_(std::move(options)),
      key_status_(CheckKey(options_)),
      context_(1),
      channel_(context_, options_.endpoint, {}, SecurityFor(options_, key_status_)) {}

template <typename Reply>
absl::StatusOr<Reply> Client::Roundtrip(protocols::Body body) {
  SUBLET_RETURN_IF_ERROR(key_status_);
  Envelope request;
  request.token = options_.token;
  request.body = std::move(body);
  absl::StatusOr<Envelope> reply = channel_.Call(std::move(request), options_.timeout);
  if (!reply.ok()) {
    if (protocols::IsHandshakeFailure(reply.status())) return reply.status();
    if (absl::IsUnavailable(reply.status()) || absl::IsDeadlineExceeded(reply.status())) {
      return absl::UnavailableError(
          fmt::format("cannot reach coordinator at {}", options_.endpoint));
    }
    // A malformed endpoint (InvalidArgument) or an undecodable reply.
    return reply.status();
  }
  SUBLET_RETURN_IF_ERROR(protocols::StatusFromReply(*reply));
  if (Reply* typed = std::get_if<Reply>(&reply->body)) return std::move(*typed);
  return absl::InternalError(
      fmt::format("unexpected reply from the coordinator (body type #{})", reply->body.index()));
}

absl::StatusOr<uint64_t> Client::Submit(const protocols::JobSpec& spec) {
  SUBLET_ASSIGN_OR_RETURN(auto reply, SubmitJob(spec));
  return reply.job_id;
}

absl::StatusOr<protocols::SubmitJobReply> Client::SubmitJob(const protocols::JobSpec& spec) {
  return Roundtrip<protocols::SubmitJobReply>(protocols::SubmitJobRequest{spec});
}

absl::StatusOr<std::vector<protocols::JobInfo>> Client::ListJobs(bool all) {
  SUBLET_ASSIGN_OR_RETURN(auto reply,
                          Roundtrip<protocols::JobListReply>(protocols::ListJobsRequest{all}));
  return std::move(reply.jobs);
}

absl::StatusOr<protocols::JobInfo> Client::GetJob(uint64_t job_id) {
  SUBLET_ASSIGN_OR_RETURN(auto reply,
                          Roundtrip<protocols::JobReply>(protocols::GetJobRequest{job_id}));
  return std::move(reply.job);
}

absl::StatusOr<protocols::JobInfo> Client::Cancel(uint64_t job_id) {
  SUBLET_ASSIGN_OR_RETURN(auto reply,
                          Roundtrip<protocols::JobReply>(protocols::CancelJobRequest{job_id}));
  return std::move(reply.job);
}

absl::StatusOr<protocols::LogsReply> Client::ReadLogs(const protocols::ReadLogsRequest& request) {
  return Roundtrip<protocols::LogsReply>(request);
}

absl::StatusOr<std::vector<protocols::NodeInfo>> Client::ListNodes() {
  SUBLET_ASSIGN_OR_RETURN(auto reply,
                          Roundtrip<protocols::NodeListReply>(protocols::ListNodesRequest{}));
  return std::move(reply.nodes);
}

absl::StatusOr<protocols::ReclaimInfo> Client::Reclaim(const protocols::ReclaimRequest& request) {
  SUBLET_ASSIGN_OR_RETURN(auto reply, Roundtrip<protocols::ReclaimListReply>(request));
  if (reply.reclaims.size() != 1) {
    return absl::InternalError("coordinator answered a reclaim without exactly one reclaim");
  }
  return std::move(reply.reclaims[0]);
}

absl::StatusOr<std::vector<protocols::ReclaimInfo>> Client::Release(
    const protocols::ReleaseRequest& request) {
  SUBLET_ASSIGN_OR_RETURN(auto reply, Roundtrip<protocols::ReclaimListReply>(request));
  return std::move(reply.reclaims);
}

absl::StatusOr<std::vector<protocols::ReclaimInfo>> Client::ListReclaims(uint64_t reclaim_id) {
  SUBLET_ASSIGN_OR_RETURN(auto reply, Roundtrip<protocols::ReclaimListReply>(
                                          protocols::ListReclaimsRequest{reclaim_id}));
  return std::move(reply.reclaims);
}

absl::StatusOr<std::vector<protocols::AuditEntry>> Client::ListAudit(
    const protocols::ListAuditRequest& request) {
  SUBLET_ASSIGN_OR_RETURN(auto reply, Roundtrip<protocols::AuditListReply>(request));
  return std::move(reply.entries);
}

absl::StatusOr<protocols::TenantListReply> Client::ListTenants() {
  return Roundtrip<protocols::TenantListReply>(protocols::ListTenantsRequest{});
}

bool IsFinalState(const std::string& state) {
  return state == "succeeded" || state == "failed" || state == "cancelled";
}

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 2;
    case absl::StatusCode::kNotFound:
      return 3;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return 4;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return 5;
    default:
      return 1;
  }
}

}  // namespace sublet::client
