// sublet-coordinator's event loop: one thread owns the ROUTER socket, the
// store and the cluster state.
//
// Each turn of the loop:
//  1. waits for frames (or the next tick), then drains up to `max_batch`;
//  2. opens one store transaction and applies every frame (authenticate,
//     authorize, act), collecting replies and worker syncs in an outbox;
//  3. enforces timeouts and runs a scheduling pass when something changed;
//  4. commits, and only then sends the outbox. If the commit fails, nothing
//     is sent but errors, and the state is reloaded from the store.
// A frame that fails (bad bytes, a bug) fails only its own request: each
// request runs in a store savepoint, and one that throws is rolled back and
// the state reloaded. The batch is rolled back only when the store itself
// failed (Store::failure), never because a handler refused a caller.
// Refusals to audit (Cluster::NoteRefusal) are written after the request's
// savepoint has ended, so they outlive the request's own rollback.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/clock.h"
#include "coordinator/cluster.h"
#include "coordinator/config.h"
#include "coordinator/store.h"
#include "protocols/channel.h"

namespace sublet::coordinator {

struct CoordinatorOptions {
  std::string listen = "tcp://127.0.0.1:7700";
  std::string state_dir;  // holds state.db; created if missing
  Config config;
  absl::Duration tick = absl::Milliseconds(100);  // timeout checks, log-proxy expiry
  size_t max_batch = 4096;                         // frames per transaction
  // Frames one connection may have applied per turn; beyond it they are
  // refused with ResourceExhausted, so a flooding client cannot crowd out
  // others (ZeroMQ already reads connections fairly; this bounds the work).
  size_t max_frames_per_peer = 256;
  // Plain ZeroMQ instead of CURVE: only for the benchmark's baseline (the
  // binary has no way to set it). Then nodes authenticate by workers.token.
  bool plaintext = false;
  absl::Duration log_proxy_timeout = absl::Seconds(4);
  // Test seam: called after each request's handler, inside its savepoint
  // (a test makes it throw to play a buggy handler).
  std::function<void(const protocols::Envelope&)> TEST_after_request;
};

class Coordinator {
 public:
  // Opens the store, recovers state, binds the socket.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(CoordinatorOptions options,
                                                              zmq::context_t& context,
                                                              const Clock& clock);
  std::string endpoint() const { return channel_.endpoint(); }
  // The CURVE public key clients and workers pin (Z85); empty when plaintext.
  const std::string& public_key() const { return public_key_; }
  // Serves until `stop` becomes true (checked at least every tick).
  void Run(const std::atomic<bool>& stop);

  // ---- test seams (not for Run's thread: call them instead of Run) --------
  // One turn over `batch`, as Run would take it; returns what it would send
  // (peer, envelope) instead of sending it.
  std::vector<std::pair<std::string, protocols::Envelope>> TEST_Turn(
      std::vector<protocols::Incoming> batch);
  const Cluster& TEST_cluster() const { return cluster_; }
  Store& TEST_store() { return *store_; }

 private:
  struct Outgoing {
    std::string peer;
    protocols::Envelope envelope;
  };
  // A `sublet logs` request forwarded to the worker that ran the rank.
  struct PendingLog {
    std::string client_peer;
    uint64_t client_request_id;
    std::string worker_peer;
    absl::Time deadline;
  };

  Coordinator(CoordinatorOptions options, zmq::context_t& context, const Clock& clock,
              std::unique_ptr<Store> store);
  void Turn(std::vector<protocols::Incoming>& batch);
  void Process(std::vector<protocols::Incoming>& batch);  // a turn, up to sending
  void Abandon(const absl::Status& cause);
  void Note(const absl::Status& status);
  void Dispatch(protocols::Incoming& in);
  void Apply(protocols::Envelope& env, const std::string& peer, const std::string& user_id);
  // Whether the connection labelled `user_id` may report as a node; audits
  // (a bounded number of times) an unlisted key that tries.
  bool AdmitNode(const protocols::Envelope& env, const std::string& peer,
                 const std::string& user_id);
  void HandleReport(const protocols::WorkerReport& report, const std::string& peer);
  absl::StatusOr<protocols::Body> HandleApi(const Principal& who, protocols::Envelope& request,
                                            const std::string& peer, bool& deferred);
  absl::StatusOr<protocols::Body> Submit(const Principal& who, protocols::SubmitJobRequest& r);
  absl::StatusOr<protocols::Body> ListJobs(const Principal& who, const protocols::ListJobsRequest& r);
  absl::StatusOr<protocols::Body> StartReclaim(const Principal& who,
                                               const protocols::ReclaimRequest& r);
  absl::StatusOr<protocols::Body> TryStartReclaim(const Principal& who,
                                                  const protocols::ReclaimRequest& r);
  absl::StatusOr<protocols::Body> Release(const Principal& who, const protocols::ReleaseRequest& r);
  absl::StatusOr<protocols::Body> TryRelease(const Principal& who,
                                             const protocols::ReleaseRequest& r);
  absl::StatusOr<protocols::Body> ListAudit(const Principal& who,
                                            const protocols::ListAuditRequest& r);
  absl::StatusOr<protocols::Body> ListReclaims(const Principal& who,
                                               const protocols::ListReclaimsRequest& r);
  absl::StatusOr<const Job*> VisibleJob(const Principal& who, uint64_t id);
  absl::Status ForwardLogs(const Principal& who, const protocols::ReadLogsRequest& r,
                           const std::string& peer, uint64_t request_id);
  void HandleWorkerReply(protocols::Envelope& reply, const std::string& peer);
  void ExpireLogProxies();
  void Reply(const std::string& peer, uint64_t request_id, protocols::Body body);
  void QueueSyncs();
  void Flush();

  CoordinatorOptions options_;
  const Clock& clock_;
  std::unique_ptr<Store> store_;
  Cluster cluster_;
  protocols::ServerChannel channel_;
  std::vector<Outgoing> outbox_;
  std::map<uint64_t, PendingLog> pending_logs_;
  // Per turn: the first store failure, the requests to answer if it happens,
  // and the exits each reporting node gets acknowledged.
  absl::Status batch_failed_;
  std::vector<std::pair<std::string, uint64_t>> batch_requests_;
  std::map<std::string, std::vector<protocols::RankKey>> reported_;
  std::map<std::string, size_t> frames_this_turn_;
  uint64_t bad_frames_ = 0;
  uint64_t throttled_frames_ = 0;
  uint64_t next_proxy_id_ = 1;
  absl::Time next_tick_ = absl::InfinitePast();
  std::string public_key_;
  // Unlisted node keys audited already, and how many refusals went
  // unaudited past the bound (so a stranger minting keys cannot fill the
  // audit log).
  std::set<std::string> audited_node_keys_;
  uint64_t unaudited_node_refusals_ = 0;
};

// The coordinator's key files in its state directory.
inline constexpr char kCoordinatorKeyFile[] = "coordinator.key";  // secret, 0600
inline constexpr char kCoordinatorPublicKeyFile[] = "coordinator.pub";
inline constexpr char kRankSecretKeyFile[] = "rank-secret.key";  // 0600

// Creates the coordinator's CURVE key pair in `state_dir` on first use and
// returns it; also writes the public key to coordinator.pub.
absl::StatusOr<protocols::CurveKeyPair> CoordinatorKeys(const std::string& state_dir);

}  // namespace sublet::coordinator
