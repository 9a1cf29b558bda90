// The client library: the tenant/admin API of the coordinator as blocking
// calls. The `sublet` CLI is built on it; programs may use it directly.
//
// Thread-safety: a Client is not thread-safe (it owns one ZeroMQ socket); use
// one per thread. Every call waits at most `timeout` for the coordinator.
//
// Errors are the coordinator's canonical codes (NotFound for an unknown job or
// another tenant's, PermissionDenied/Unauthenticated for a bad token,
// InvalidArgument naming a bad spec field), Unavailable "cannot reach
// coordinator at ADDR" when nothing answered in time, InvalidArgument for a
// malformed endpoint or an undecodable reply, and Internal when the
// coordinator answered with a reply of the wrong type.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/status.h"
#include "protocols/channel.h"
#include "protocols/messages.h"

namespace sublet::client {

struct ClientOptions {
  std::string endpoint = "tcp://127.0.0.1:7700";  // the coordinator
  std::string token;                              // tenant, admin or node token
  // The coordinator's CURVE public key (Z85) to pin. Required: without it
  // (and without `plaintext`) every call fails with InvalidArgument.
  std::string coordinator_key;
  bool plaintext = false;  // plain ZeroMQ: the benchmark's baseline only
  std::chrono::milliseconds timeout{5000};        // per call
};

class Client {
 public:
  // Connects lazily (ZeroMQ): constructing never waits for the coordinator,
  // and a malformed endpoint fails every call with InvalidArgument.
  explicit Client(ClientOptions options);
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const ClientOptions& options() const { return options_; }

  // Returns the new job's id (from 1 up).
  absl::StatusOr<uint64_t> Submit(const protocols::JobSpec& spec);
  // The same, with the whole reply: an array's size besides its first id.
  absl::StatusOr<protocols::SubmitJobReply> SubmitJob(const protocols::JobSpec& spec);
  // The caller's jobs; `all` lists every tenant's (admins only).
  absl::StatusOr<std::vector<protocols::JobInfo>> ListJobs(bool all);
  // One job with its rank placement and events.
  absl::StatusOr<protocols::JobInfo> GetJob(uint64_t job_id);
  // Cancels the job and returns it in its new state.
  absl::StatusOr<protocols::JobInfo> Cancel(uint64_t job_id);
  // One chunk of a rank's log, starting at `request.offset`.
  absl::StatusOr<protocols::LogsReply> ReadLogs(const protocols::ReadLogsRequest& request);
  absl::StatusOr<std::vector<protocols::NodeInfo>> ListNodes();

  // Admin: starts a reclaim and returns it as first stored.
  absl::StatusOr<protocols::ReclaimInfo> Reclaim(const protocols::ReclaimRequest& request);
  // Admin: releases nodes; returns the reclaims concerned.
  absl::StatusOr<std::vector<protocols::ReclaimInfo>> Release(
      const protocols::ReleaseRequest& request);
  // Admin: every reclaim (`reclaim_id` 0), or only `reclaim_id`'s (NotFound if none).
  absl::StatusOr<std::vector<protocols::ReclaimInfo>> ListReclaims(uint64_t reclaim_id = 0);
  // Admin: the audit log, oldest first (protocols::ListAuditRequest).
  absl::StatusOr<std::vector<protocols::AuditEntry>> ListAudit(
      const protocols::ListAuditRequest& request);
  // Tenants' quotas, use and shares: a tenant gets its own row, an admin all.
  absl::StatusOr<protocols::TenantListReply> ListTenants();

 private:
  // Sends `body` and returns the reply of type `Reply`, or the error it stands for.
  template <typename Reply>
  absl::StatusOr<Reply> Roundtrip(protocols::Body body);

  ClientOptions options_;
  absl::Status key_status_;  // a missing or malformed coordinator key
  zmq::context_t context_;
  protocols::ClientChannel channel_;
};

// A job state that never changes again: succeeded, failed, cancelled.
bool IsFinalState(const std::string& state);

// The `sublet` exit code for a status (DESIGN.md): 0 OK, 2 invalid input,
// 3 not found, 4 permission denied, 5 coordinator unavailable, 1 anything else.
int ExitCodeFor(const absl::Status& status);

}  // namespace sublet::client
