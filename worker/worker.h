// The node agent: reports this node to the coordinator and runs the ranks the
// coordinator wants on it.
//
// Protocol with the coordinator (one DEALER channel, every message an
// Envelope carrying the worker-pool token):
//   1. At start the worker kills ranks a previous worker process left behind
//      (worker/pid_file.h) and sends a WorkerReport: node, a random
//      incarnation, address, GPUs, free ports and ranks.
//   2. It sends the report again every heartbeat and at once when a rank
//      exits. A report is the whole state, so one that is dropped while the
//      coordinator is unreachable is repaired by the next. The worker never
//      stops ranks because the coordinator is unreachable.
//   3. A WorkerSync for this incarnation is the desired state: ranks never
//      launched in this incarnation start (after the worker has created the
//      directory their SUBLET_CHECKPOINT_DIR names), running ranks not listed
//      get SIGTERM and, after stop_grace_ms, SIGKILL (to their process
//      group), and acknowledged exits are dropped from reports
//      (worker/rank_table.h).
//      Each preemption notice is delivered once per rank: SIGUSR1 to the rank
//      process and a PreemptNotice on the control endpoint (to the rank's
//      DEALER, whose routing id is "r" + its control token); SIGKILL to its
//      group at the notice's deadline if it still runs.
//   4. A ReadRankLogRequest is answered with the same request id: a LogsReply
//      or an ErrorReply.
//
// Layout of the work directory:
//   DIR/jobs/<job>/attempt-<a>/            the rank's working directory
//   DIR/jobs/<job>/attempt-<a>/rank-<r>.log its stdout and stderr
//   DIR/ranks/<job>.<a>.<r>.pid             pid and start time while it runs
//   DIR/jobs/<job>/attempt-<a>/work/       the ranks' working directory when
//                                           sandboxed (owned by the tenant's uid)
//   DIR/ranks/sandbox.<job>.<a>.pid          the attempt's sandbox holder
//   DIR/control.sock                        the control endpoint (ZeroMQ ROUTER)
//   DIR/instance                            this worker's instance, made once
//
// Isolation (worker/sandboxes.h): with options.isolation.enabled every rank
// runs in its attempt's sandbox, as its tenant's uid, and a preemption
// notice's signal goes to every process of the attempt on this node.
//
// Thread-safety: none. Run() must be called from one thread, which then owns
// the worker's sockets.
#pragma once

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "absl/time/time.h"
#include "common/clock.h"
#include "common/status.h"
#include "protocols/channel.h"
#include "protocols/messages.h"
#include "worker/process_launcher.h"
#include "worker/rank_table.h"
#include "worker/sandboxes.h"

namespace sublet::worker {

class Worker {
 public:
  struct Options {
    std::string coordinator;   // ZeroMQ endpoint, e.g. "tcp://10.0.0.1:7700" (required)
    std::string node;          // this node's name (required)
    std::string token;         // the worker-pool token, if the config has one
    // CURVE: the coordinator's public key and this node's key pair (listed
    // under workers.keys). An empty server key: plain ZeroMQ (tests only).
    protocols::ClientSecurity security;
    std::string address = "127.0.0.1";  // where ranks on other nodes reach this node
    std::string work_dir;      // absolute; created if missing (required)
    std::vector<protocols::GpuInfo> gpus;            // the inventory
    absl::Duration heartbeat = absl::Seconds(1);     // report period
    absl::Duration stop_grace = absl::Seconds(10);   // until a sync names another
    int free_ports = 8;                              // ports probed for each report
    absl::Duration max_poll_wait = absl::Milliseconds(100);  // stop-flag latency
    IsolationOptions isolation;  // enabled: ranks run sandboxed (the launcher
                                 // must then have a SandboxConfinement)
  };

  // The dependencies must outlive the worker.
  Worker(Options options, Clock& clock, ProcessLauncher& launcher, zmq::context_t& context);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Serves until `stop` becomes true; then stops every rank (SIGTERM, SIGKILL
  // after the grace), waits for their exits, sends a final report and
  // returns OK. Errors: the work directory or the control socket could not
  // be set up (nothing was started then).
  absl::Status Run(const std::atomic<bool>& stop);

  const std::string& incarnation() const { return table_.incarnation(); }
  const std::string& control_endpoint() const { return control_endpoint_; }

 private:
  // Drives the steps below one at a time (tests/worker/worker_test_peer.h).
  friend class WorkerTestPeer;

  // ---- the steps Run is made of --------------------------------------------

  // Creates the work directory layout, reads (or makes) the instance and
  // kills leftover ranks and sandboxes.
  absl::Status Prepare();
  // Step 3 of the protocol. Ignored while shutting down.
  void HandleSync(const protocols::WorkerSync& sync);
  // Records exits from the launcher; each makes a report due.
  void HandleExits(const std::vector<ProcessExit>& exits);
  // Sends SIGKILL to stopping ranks whose grace has passed.
  void FireDueKills();
  // Stops every rank and refuses new ones.
  void BeginShutdown();
  // The current report (probes free ports).
  protocols::WorkerReport BuildReport() const;
  // Errors: InvalidArgument (bad job id), NotFound (no such log).
  absl::StatusOr<protocols::LogsReply> ReadRankLog(
      const protocols::ReadRankLogRequest& request) const;

  // worker.cc: ranks.
  // `attempt_gpus`: every GPU the rank's attempt is given on this node.
  void LaunchRank(const protocols::RankLaunch& launch, const std::vector<uint32_t>& attempt_gpus);
  std::string NewControlToken();
  absl::StatusOr<int> StartRank(const protocols::RankLaunch& launch,
                                const std::vector<uint32_t>& attempt_gpus,
                                const std::string& control_token);
  // Destroys the sandboxes of attempts with no live rank left.
  void CollectSandboxes();
  void StopRank(const RankKey& key);
  void DeliverNotice(const RankRecord& record, const protocols::PreemptNotice& notice);
  void SendControl(const RankRecord& record, const protocols::PreemptNotice& notice);
  void CreateCheckpointDir(const protocols::RankLaunch& launch) const;
  std::string AttemptDir(const RankKey& key) const;
  std::string LogPath(const RankKey& key) const;
  std::string PidPath(const RankKey& key) const;

  // worker_loop.cc: sockets and the event loop.
  absl::Status OpenSockets();
  void CloseSockets();
  void PollOnce();
  void DrainCoordinator();
  void DrainControl();
  void HandleControlFrame(const std::string& payload);
  void Dispatch(const protocols::Envelope& envelope);
  void ServeLogRequest(const protocols::Envelope& envelope,
                       const protocols::ReadRankLogRequest& request);
  void SendReport();
  void Send(protocols::Envelope envelope);

  Options options_;
  Clock& clock_;
  ProcessLauncher& launcher_;
  zmq::context_t& context_;
  std::string control_endpoint_;

  RankTable table_;
  Sandboxes sandboxes_;
  std::string instance_;
  absl::Duration stop_grace_;
  bool shutting_down_ = false;
  bool report_due_ = false;
  bool coordinator_unreachable_ = false;
  absl::Time next_heartbeat_ = absl::InfinitePast();

  std::unique_ptr<protocols::ClientChannel> channel_;
  std::unique_ptr<zmq::socket_t> control_;
};

// A random hex string, fresh for every worker process.
std::string NewIncarnation();

}  // namespace sublet::worker
