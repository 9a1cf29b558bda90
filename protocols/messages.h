// Every message Sublet's daemons and clients exchange, as plain C++ values.
// The codec (protocols/codec.h) turns these into Cap'n Proto frames
// (protocols/sublet.capnp) and back; nothing outside the codec touches Cap'n
// Proto readers, so no other code can be surprised by hostile bytes.
//
// One frame = one Envelope. Requests carry the caller's token and a request id;
// the reply to a request carries the same request id.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "protocols/job_spec.h"

namespace sublet::protocols {

// Checked on every frame before any body field is read. 2: job and reclaim
// ids are integers (uint64), no longer text.
inline constexpr uint16_t kProtocolVersion = 2;

// Job and reclaim ids are assigned by the coordinator from 1 up; 0 means
// "none" in every id field below.

// ---- shared values -------------------------------------------------------

struct KeyValue {
  std::string key;
  std::string value;
  bool operator==(const KeyValue&) const = default;
};

struct JobEvent {
  int64_t time_unix_ms = 0;
  std::string kind;     // "submitted", "scheduled", "rank_failed", ...
  std::string who;      // tenant/admin name, "scheduler", "worker:<node>"
  std::string message;  // a sentence a person understands
  bool operator==(const JobEvent&) const = default;
};

// How far a rank has come, as it reports itself through the worker's
// control endpoint (SUBLET_CONTROL). -1 / 0: not reported.
struct Progress {
  int64_t step = -1;
  double loss = 0;
  double tokens_per_s = 0;
  int64_t checkpoint_step = -1;  // newest checkpoint the rank knows committed
  int64_t time_unix_ms = 0;      // when the worker received it
  // The newest checkpoint's size and how long persisting it took; the
  // coordinator estimates a reclaimed job's save time from them. 0: unknown.
  int64_t checkpoint_bytes = 0;
  double checkpoint_persist_s = 0;
  bool operator==(const Progress&) const = default;
};

struct RankPlacement {
  uint32_t rank = 0;
  std::string node;
  uint32_t local_rank = 0;
  std::vector<uint32_t> gpus;
  std::string state;      // "running", "exited"
  int32_t exit_code = 0;  // valid when state == "exited"; 128+N for signal N
  bool operator==(const RankPlacement&) const = default;
};

struct JobInfo {
  uint64_t id = 0;
  std::string name;
  std::string tenant;
  std::string state;   // pending, running, preempting, succeeded, failed, cancelled
  std::string reason;  // why pending, or why it ended
  uint32_t restarts = 0;
  uint32_t preemptions = 0;
  uint32_t attempt = 0;
  std::vector<std::string> nodes;  // placement of the current/last attempt
  int64_t last_checkpoint_step = -1;
  int64_t submit_time_unix_ms = 0;
  int64_t start_time_unix_ms = 0;  // of the current/last attempt; 0 if never
  int64_t end_time_unix_ms = 0;    // 0 while not final
  Progress progress;               // rank 0's latest report in this attempt
  JobSpec spec;
  // Accounting: GPU-seconds held by the job's ranks over all attempts, and
  // those lost to preemption (work after the checkpoint a resume starts from).
  double gpu_seconds = 0;
  double gpu_seconds_lost = 0;
  uint64_t reclaim_id = 0;   // the reclaim preempting the job now; 0: none
  std::string preempt_why;   // why the last reclaim chose this job
  int64_t resume_step = -1;  // the checkpoint step the next attempt resumes from
  // An array task: the array's id (its first task's), this task's index and
  // the array's size. array_id 0: not an array task.
  uint64_t array_id = 0;
  uint32_t array_index = 0;
  uint32_t array_size = 0;
  // A pending job's place in its tenant's queue (1: the next of its jobs the
  // scheduler considers: by priority, then submit order); 0: not pending.
  uint32_t queue_position = 0;
  // Filled only by GetJob (`sublet show`).
  std::vector<RankPlacement> ranks;
  std::vector<JobEvent> events;
  bool operator==(const JobInfo&) const = default;
};

struct NodeInfo {
  std::string name;
  std::string state;  // ready, reclaimed, draining, lost
  uint32_t gpus = 0;
  uint32_t gpus_free = 0;
  std::vector<uint64_t> jobs;  // ids of the jobs with ranks on the node
  std::string address;
  int64_t last_heartbeat_unix_ms = 0;
  uint64_t reclaim_id = 0;  // the reclaim that drains or holds the node; 0: none
  // How the node confines ranks: "sandbox" (worker/sandboxes.h) or "none"
  // (the worker runs with --no-isolation). "" before the node reported.
  std::string isolation;
  bool operator==(const NodeInfo&) const = default;
};

// One job a reclaim preempts, and how far it has come.
struct ReclaimVictim {
  uint64_t job_id = 0;
  std::string tenant;
  // preempting: notice sent; acknowledged: every rank checkpointed and exited
  // 75; killed: the deadline passed first; ended: the job stopped otherwise.
  std::string state;
  std::string why;                // why it was chosen
  int64_t checkpoint_step = -1;   // acknowledged, else the last committed one
  double estimated_save_s = -1;   // from its recent checkpoints; -1: unknown
  bool operator==(const ReclaimVictim&) const = default;
};

struct ReclaimNode {
  std::string name;
  std::string state;  // draining, reclaimed, released
  bool operator==(const ReclaimNode&) const = default;
};

struct ReclaimInfo {
  uint64_t id = 0;
  std::string who;     // the admin who asked
  std::string reason;  // their words
  std::string state;   // draining, reclaimed, released
  std::vector<std::string> requested_nodes;
  uint32_t requested_gpus = 0;
  int64_t deadline_unix_ms = 0;
  int64_t created_unix_ms = 0;
  int64_t reclaimed_unix_ms = 0;  // every node handed over; 0 until then
  int64_t released_unix_ms = 0;
  std::vector<ReclaimNode> nodes;
  std::vector<ReclaimVictim> jobs;
  std::vector<std::string> warnings;  // e.g. a deadline that looks too short
  bool operator==(const ReclaimInfo&) const = default;
};

// ---- tenant / admin API (client -> coordinator) --------------------------

struct SubmitJobRequest {
  JobSpec spec;
  std::string spec_yaml;  // non-empty: the spec as YAML, parsed by the coordinator
  bool operator==(const SubmitJobRequest&) const = default;
};
struct ListJobsRequest { bool all = false; bool operator==(const ListJobsRequest&) const = default; };
struct GetJobRequest { uint64_t job_id = 0; bool operator==(const GetJobRequest&) const = default; };
struct CancelJobRequest { uint64_t job_id = 0; bool operator==(const CancelJobRequest&) const = default; };
struct ListNodesRequest { bool operator==(const ListNodesRequest&) const = default; };
struct ReadLogsRequest {
  uint64_t job_id = 0;
  uint32_t rank = 0;
  uint32_t attempt = 0;     // 0: the current/last attempt
  uint64_t offset = 0;      // byte offset into the rank's log
  uint32_t max_bytes = 1 << 20;
  bool operator==(const ReadLogsRequest&) const = default;
};

// Admin: take capacity back. Exactly one of `nodes` and `gpus` is set.
struct ReclaimRequest {
  std::vector<std::string> nodes;
  uint32_t gpus = 0;
  int64_t deadline_ms = 0;  // from now
  std::string reason;
  bool operator==(const ReclaimRequest&) const = default;
};
// Admin: give reclaimed capacity back, by reclaim id or by node names.
struct ReleaseRequest {
  uint64_t reclaim_id = 0;  // 0: release by `nodes`
  std::vector<std::string> nodes;
  bool operator==(const ReleaseRequest&) const = default;
};
// Admin: every reclaim, or the one named.
struct ListReclaimsRequest {
  uint64_t reclaim_id = 0;  // 0: every reclaim
  bool operator==(const ListReclaimsRequest&) const = default;
};

// Admin: the coordinator's audit log (who asked for what, refusals
// included), oldest first: the newest `limit` entries (0: 100; the
// coordinator gives at most 10000) from the last `since_ms` milliseconds by
// the coordinator's clock (0: from the beginning).
struct ListAuditRequest {
  int64_t since_ms = 0;
  uint32_t limit = 0;
  bool operator==(const ListAuditRequest&) const = default;
};

// ---- API replies (coordinator -> client) ---------------------------------

// Canonical absl status code number plus a message naming the cause.
struct ErrorReply {
  uint32_t code = 0;
  std::string message;
  bool operator==(const ErrorReply&) const = default;
};
// An array's tasks are the ids job_id .. job_id + array_size - 1.
struct SubmitJobReply {
  uint64_t job_id = 0;
  uint32_t array_size = 0;  // 0: not an array
  bool operator==(const SubmitJobReply&) const = default;
};
struct JobListReply { std::vector<JobInfo> jobs; bool operator==(const JobListReply&) const = default; };
struct JobReply { JobInfo job; bool operator==(const JobReply&) const = default; };
struct NodeListReply { std::vector<NodeInfo> nodes; bool operator==(const NodeListReply&) const = default; };
struct ReclaimListReply {
  std::vector<ReclaimInfo> reclaims;
  bool operator==(const ReclaimListReply&) const = default;
};
struct LogsReply {
  std::string data;          // raw bytes of the log from `offset`
  uint64_t next_offset = 0;  // where the next read starts
  bool complete = false;     // the rank has exited and everything was read
  bool operator==(const LogsReply&) const = default;
};

struct AuditEntry {
  int64_t time_unix_ms = 0;
  std::string who;     // admin or tenant name, "scheduler", "worker:<node>"
  std::string action;  // "reclaim", "reclaim_refused", "release", "handover", ...
  std::string detail;  // a sentence a person understands
  bool operator==(const AuditEntry&) const = default;
};
struct AuditListReply {
  std::vector<AuditEntry> entries;  // oldest first
  bool operator==(const AuditListReply&) const = default;
};

// Tenants' quotas and use (coordinator/fair_share.h): a tenant gets its own
// row, an admin every tenant's.
struct ListTenantsRequest {
  bool operator==(const ListTenantsRequest&) const = default;
};
struct TenantInfo {
  std::string name;
  std::optional<uint32_t> quota_gpus;         // absent: no quota (0)
  std::optional<uint32_t> borrow_limit_gpus;  // absent: no limit
  double weight = 1.0;
  Priority max_priority = Priority::kHigh;
  uint32_t in_use_gpus = 0;    // held by its live ranks
  uint32_t borrowed_gpus = 0;  // of those, beyond its quota
  uint32_t pending_jobs = 0;
  uint32_t pending_gpus = 0;   // what its pending jobs ask for in all
  double share = 0;            // weighted share, as the scheduler orders borrowers
  double decayed_gpu_seconds = 0;
  double gpu_seconds = 0;      // used in all, ended attempts and running ones
  double gpu_seconds_borrowed = 0;  // of those, on GPUs beyond its quota
  double gpu_seconds_lost = 0;      // to preemption: work redone after a resume
  // The quota as the scheduler applies it now: scaled down in proportion
  // when the pool is smaller than the sum of the quotas (fair_share.h).
  uint32_t quota_in_force_gpus = 0;
  bool operator==(const TenantInfo&) const = default;
};
struct TenantListReply {
  std::vector<TenantInfo> tenants;
  bool policies = false;  // quotas and fair share are configured
  uint32_t pool_gpus = 0;
  bool operator==(const TenantListReply&) const = default;
};

// ---- worker channel ------------------------------------------------------

struct GpuInfo {
  uint32_t index = 0;
  std::string model;     // "emulated" when --gpus emulates them
  uint64_t memory_mib = 0;
  bool operator==(const GpuInfo&) const = default;
};

// Identifies one rank of one attempt of one job.
struct RankKey {
  uint64_t job_id = 0;
  uint32_t attempt = 0;
  uint32_t rank = 0;
  bool operator==(const RankKey&) const = default;
  auto operator<=>(const RankKey&) const = default;
};

struct RankStatus {
  RankKey key;
  bool exited = false;
  int32_t exit_code = 0;  // 128+N when killed by signal N
  Progress progress;      // the rank's latest report, if any
  std::string message;    // on a failed exit: the rank's last output line (why)
  bool operator==(const RankStatus&) const = default;
};

// Rank -> its worker, on the control endpoint: the envelope's token is the
// rank's SUBLET_CONTROL_TOKEN, so one tenant's rank cannot speak for another.
struct RankProgress {
  RankKey key;
  Progress progress;  // time_unix_ms is set by the worker on receipt
  bool operator==(const RankProgress&) const = default;
};

// Worker -> coordinator: sent at registration, every heartbeat, and at once
// when a rank exits. It is the worker's whole state, so a lost report is
// repaired by the next one.
struct WorkerReport {
  std::string node;
  std::string incarnation;   // random per worker process start
  std::string address;       // address ranks on other nodes reach this node at
  std::vector<GpuInfo> gpus;
  std::vector<uint32_t> free_ports;  // probed free TCP ports for MASTER_PORT etc.
  std::vector<RankStatus> ranks;     // running ranks and exits not yet acknowledged
  std::string isolation;             // "sandbox" or "none", as in NodeInfo
  // The worker instance: random, made once per work directory and kept
  // there, so a restart of the same worker keeps it while another worker
  // claiming the same node name does not have it.
  std::string instance;
  bool operator==(const WorkerReport&) const = default;
};

// What one rank must run. The coordinator fills the full rank environment
// of DESIGN.md except CUDA_VISIBLE_DEVICES and SUBLET_CONTROL, which the
// worker adds because only it knows its devices and control endpoint.
struct RankLaunch {
  RankKey key;
  std::vector<std::string> command;
  std::vector<KeyValue> env;
  std::vector<uint32_t> gpus;
  // Who the rank runs for: a sandboxing worker runs it as the uid of the
  // tenant's number (worker/sandboxes.h) and lets it see only
  // <storage_root>/<tenant>/<job> of the shared storage.
  std::string tenant;
  uint32_t tenant_number = 0;  // from 1; assigned once by the coordinator
  std::string storage_root;
  bool operator==(const RankLaunch&) const = default;
};

// A preemption notice for one rank. Coordinator -> worker inside WorkerSync;
// worker -> rank on the control endpoint (with SIGUSR1). The worker sends
// SIGKILL to the rank if it still runs at the deadline.
struct PreemptNotice {
  RankKey key;
  int64_t deadline_unix_ms = 0;
  std::string reason;
  uint32_t signal = 0;  // the job's preemption.signal; 0: SIGUSR1
  bool operator==(const PreemptNotice&) const = default;
};

// Coordinator -> worker: the desired state of the node. The worker starts
// every listed rank it has not started in this incarnation, stops every rank
// it runs that is not listed, delivers each notice once, and forgets the
// acknowledged exits.
struct WorkerSync {
  std::string incarnation;  // the worker incarnation this sync is for
  std::vector<RankLaunch> desired;
  std::vector<RankKey> acked_exits;
  uint32_t stop_grace_ms = 10000;  // SIGTERM, then SIGKILL after this
  std::vector<PreemptNotice> notices;
  bool operator==(const WorkerSync&) const = default;
};

// Coordinator -> worker, answered by LogsReply (or ErrorReply) with the same
// request id: the coordinator proxies `sublet logs` to the node that ran it.
struct ReadRankLogRequest {
  RankKey key;
  uint64_t offset = 0;
  uint32_t max_bytes = 1 << 20;
  bool operator==(const ReadRankLogRequest&) const = default;
};

// ---- the envelope ----------------------------------------------------------

using Body = std::variant<
    // API requests
    SubmitJobRequest, ListJobsRequest, GetJobRequest, CancelJobRequest, ListNodesRequest,
    ReadLogsRequest,
    // API replies
    ErrorReply, SubmitJobReply, JobListReply, JobReply, NodeListReply, LogsReply,
    // worker channel
    WorkerReport, WorkerSync, ReadRankLogRequest,
    // rank control endpoint
    RankProgress,
    // reclaim (admin API), and the notice a worker passes to a rank
    ReclaimRequest, ReleaseRequest, ListReclaimsRequest, ReclaimListReply, PreemptNotice,
    // audit log (admin API)
    ListAuditRequest, AuditListReply,
    // tenants' quotas and use
    ListTenantsRequest, TenantListReply>;

struct Envelope {
  uint16_t version = kProtocolVersion;
  uint64_t request_id = 0;
  std::string token;
  Body body;
  bool operator==(const Envelope&) const = default;
};

}  // namespace sublet::protocols
