// Cluster: the coordinator's state machine for jobs and nodes. It applies
// submissions, cancellations, worker reports and timeouts, runs scheduling
// passes, and writes every change to the Store inside the caller's
// transaction. It does no I/O of its own: what must be sent to workers is
// exposed as the set of nodes whose desired state changed (TakeDirtyNodes),
// which the event loop turns into WorkerSync messages after committing.
//
// Job lifecycle:
//   pending --(placed)--> running --(every rank exit 0)--> succeeded
//   running --(a rank fails)--> pending (restarts+1) or failed at max_restarts
//   running --(a node is lost)--> pending (not counted: not the tenant's fault)
//   running --(a rank exits 75)--> pending (preemptions+1, never counted)
//   running --(reclaim, or fairness)--> preempting --(every rank exited)--> pending
//                                                   (preemptions+1, never counted)
//   running --(time_limit)--> failed;   pending|running --(cancel)--> cancelled
// When an attempt ends early its other ranks are stopped (`stopping`); no new
// attempt starts, and their GPUs stay taken, until each has reported its exit
// or its node is gone. So no GPU is ever given to two ranks at once.
//
// What Cluster owns, and what it asks: the lifecycle above (cluster.cc), the
// worker side and the node registry (cluster_nodes.cc), placement and
// timeouts (cluster_schedule.cc), the reclaim transaction
// (cluster_reclaim.cc) and the audit log. GPU bookkeeping is the GpuLedger's
// (gpu_ledger.h), GPU-seconds are accounting.h's, a rank's environment is
// rank_env.h's; the scheduler and victim choice are pure policies.
//
// Errors: InvalidArgument, NotFound, FailedPrecondition, ResourceExhausted
// are the caller's; a store failure is recorded by the Store itself
// (Store::failure), and the caller rolls the transaction back on that alone.
//
// Thread-compatible: owned by the event-loop thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "coordinator/config.h"
#include "coordinator/dependencies.h"
#include "coordinator/gpu_ledger.h"
#include "coordinator/model.h"
#include "coordinator/scheduler.h"
#include "coordinator/store.h"
#include "protocols/messages.h"

namespace sublet::coordinator {

class Cluster {
 public:
  Cluster(Store& store, const Clock& clock, const Config& config);

  // Loads everything from the store. Nodes get a fresh heartbeat deadline.
  absl::Status Recover();
  // Loads everything from the store again after a rollback, keeping what the
  // store does not hold (connections, heartbeats, progress, strays) for the
  // nodes and attempts that are still there. On error the state is unchanged.
  absl::Status Reload();

  // ---- tenant / admin actions -------------------------------------------
  // Validates (again) and stores a new pending job; returns its id. A spec
  // with `array` stores one job per index, with consecutive ids, and returns
  // the first, which is the array's id. ResourceExhausted when the tenant
  // would have more than max_jobs_per_tenant jobs that have not ended;
  // NotFound when depends_on names a job the tenant does not have;
  // InvalidArgument when a dependency can never hold.
  absl::StatusOr<uint64_t> Submit(const std::string& tenant, protocols::JobSpec spec);
  // FailedPrecondition when the job already ended.
  absl::Status Cancel(uint64_t job_id, const std::string& who);

  // ---- reclaim (admins; DESIGN.md "Reclaim transaction") ------------------
  // Stores the reclaim, picks its nodes (named, or chosen for a GPU count),
  // drains them and sends every victim job into `preempting`. Returns its id.
  absl::StatusOr<uint64_t> StartReclaim(const std::string& who,
                                        const protocols::ReclaimRequest& request);
  // Gives nodes back to tenants; returns the reclaims concerned.
  absl::StatusOr<std::vector<uint64_t>> Release(const std::string& who,
                                                const protocols::ReleaseRequest& request);
  // Appends to the audit log (Store::AppendAudit) in the caller's
  // transaction; a detail over 2000 bytes is cut there.
  absl::Status Audit(const std::string& who, const std::string& action, const std::string& detail);
  // Refusals (a reclaim or release refused, a worker registration refused)
  // are audited outside the request refused: NoteRefusal queues the entry,
  // and WriteRefusals, which the event loop calls once the request's
  // savepoint has ended (kept or rolled back), writes the queue. So nothing
  // that undoes a refused request can undo its audit entry.
  void NoteRefusal(const std::string& who, const std::string& action, const std::string& detail);
  absl::Status WriteRefusals();
  const std::map<uint64_t, Reclaim>& reclaims() const { return reclaims_; }
  const Reclaim* FindReclaim(uint64_t id) const;

  // ---- workers ------------------------------------------------------------
  // Applies a worker's report and returns the sync to answer it with.
  absl::StatusOr<protocols::WorkerSync> OnWorkerReport(const protocols::WorkerReport& report,
                                                       const std::string& peer);
  protocols::WorkerSync SyncFor(const Node& node) const;

  // ---- time ---------------------------------------------------------------
  // Marks silent nodes lost and enforces time limits.
  absl::Status CheckTimeouts();
  // Places what fits; refreshes every pending job's reason. Cheap when nothing
  // changed since the last pass.
  absl::Status Schedule();
  bool NeedsScheduling() const { return sched_dirty_; }
  // Each tenant's quota, use and share (`sublet tenants`); `only`: one tenant.
  protocols::TenantListReply Tenants(const std::optional<std::string>& only) const;
  // Each pending job's place in its tenant's queue (1: next), by priority,
  // then submit order: the order the scheduler considers a tenant's jobs in.
  // `tenant`: only that tenant's queue.
  std::map<uint64_t, uint32_t> QueuePositions(
      const std::optional<std::string>& tenant = std::nullopt) const;

  // Nodes whose desired rank set changed since the last call.
  std::set<std::string> TakeDirtyNodes();

  // ---- reads ----------------------------------------------------------------
  const Job* FindJob(uint64_t id) const;
  const std::map<uint64_t, Job>& jobs() const { return jobs_; }
  const std::map<std::string, Node>& nodes() const { return nodes_; }
  const Node* FindNode(const std::string& name) const;
  // Live job ids with ranks on `node`.
  std::vector<uint64_t> JobsOnNode(const std::string& node) const { return ledger_.JobsOn(node); }
  uint32_t FreeGpus(const Node& node) const;
  uint32_t LargestNodeGpus() const;

 private:
  void Reindex();
  absl::Status CheckDependencies(const std::string& tenant,
                                 const std::vector<protocols::Dependency>& deps);
  const DependencyTarget& TargetOf(uint64_t id, std::map<uint64_t, DependencyTarget>& cache) const;
  // Pending jobs whose dependencies do not hold yet get the reason; those
  // whose never will are cancelled. True when the job may be placed.
  absl::StatusOr<bool> DependenciesHold(Job& job, std::map<uint64_t, DependencyTarget>& cache);
  struct TenantUsage {
    uint32_t in_use = 0;  // GPUs held by live ranks
    uint32_t pending_jobs = 0;
    uint32_t pending_gpus = 0;
    double gpu_seconds = 0;
    double gpu_seconds_borrowed = 0;  // beyond the quota (Job::attempt_borrowed_gpus)
    double gpu_seconds_lost = 0;
    double decayed_gpu_seconds = 0;  // fair_share.half_life
  };
  // Every configured tenant (and any other with jobs), by name.
  std::map<std::string, TenantUsage> UsageByTenant() const;
  // Whether `node` may take new work: ready, connected, no stray ranks.
  bool Schedulable(const std::string& name, const Node& node) const;
  // The tenants of `usage` as the scheduler sees them over `pool` GPUs: the
  // quota in force (EffectiveQuotas), the use and the decayed history.
  std::vector<SchedTenant> SchedTenants(const std::map<std::string, TenantUsage>& usage,
                                        uint32_t pool) const;
  // Quotas and shares for this pass (fair_share.h); sets each pending job's tenant index.
  SchedPolicy QuotaPolicy(const std::vector<SchedNode>& nodes,
                          std::vector<SchedJob>& pending) const;
  absl::Status Event(Job& job, const std::string& kind, const std::string& who,
                     const std::string& message);
  absl::Status Save(Job& job);
  absl::Status StartAttempt(Job& job, const std::vector<const Node*>& nodes,
                            const std::vector<std::vector<uint32_t>>& gpus);
  void AssignPorts(Job& job, Node& first);
  absl::Status OnRankExit(Job& job, RankRecord& rank, int32_t code, const std::string& who);
  absl::Status OnProgress(Job& job, RankRecord& rank, const protocols::Progress& progress);
  absl::Status FailAttempt(Job& job, const std::string& msg);
  absl::Status CheckProgress(Job& job, absl::Time now);
  absl::Status EndAttempt(Job& job, const RankRecord& cause, int32_t code, const std::string& who);
  absl::Status Requeue(Job& job, const std::string& reason);
  absl::Status Finish(Job& job, JobState state, const std::string& reason);
  absl::Status AfterRanksChanged(Job& job);
  absl::Status FailRanksOnNode(const std::string& node, const std::string& why);
  // Reclaim internals (cluster_reclaim.cc).
  absl::StatusOr<std::vector<std::string>> ReclaimNodes(const protocols::ReclaimRequest& request,
                                                        std::map<uint64_t, std::string>& why);
  absl::Status Preempt(Job& job, Reclaim& reclaim, const std::string& why);
  absl::Status PreemptForFairness(Job& job, const Job& preemptor, const std::string& why);
  // "reclaim N" or "fairness preemption for job N", for a preempting job.
  std::string PreemptionCause(const Job& job) const;
  // After a quota pass (fairness.h): preempts borrowers' jobs for tenants
  // below their quota. `placed`: the pass's placements.
  absl::Status PreemptForFairness(const std::vector<SchedNode>& nodes, SchedPolicy policy,
                                  const std::vector<SchedJob>& pending,
                                  const std::vector<Placement>& placed);
  absl::Status OnPreemptingExit(Job& job, const std::string& who);
  absl::Status AdvanceReclaims();
  absl::Status CheckPreemptDeadlines(absl::Time now);
  ReclaimVictim* VictimOf(const Job& job);
  // acknowledged: every rank checkpointed and exited 75 (accounting.h).
  void AccountLostWork(Job& job, bool acknowledged);
  absl::Duration RestartBackoff(uint32_t restart) const;
  void MarkNodesDirty(const Job& job);

  Store& store_;
  const Clock& clock_;
  const Config& config_;
  std::map<uint64_t, Job> jobs_;
  std::map<std::string, Node> nodes_;
  GpuLedger ledger_;  // told about every job in Save
  std::map<std::string, uint32_t> open_jobs_;  // per tenant: jobs not yet ended
  std::map<std::string, uint32_t> stray_ranks_;  // per node: running ranks we did not ask for
  std::set<std::string> dirty_nodes_;
  std::map<uint64_t, Reclaim> reclaims_;
  std::map<std::string, uint32_t> tenant_numbers_;  // Store::NumberTenants
  std::vector<Store::AuditEntry> refusals_;         // NoteRefusal, until WriteRefusals
  // Per node: the worker instance whose refused registration was audited
  // last, so a refused worker that keeps reporting is audited once.
  std::map<std::string, std::string> refused_instances_;
  uint64_t next_job_id_ = 1;
  uint64_t next_reclaim_id_ = 1;
  bool sched_dirty_ = true;
  // When a borrower's job that could be preempted for fairness reaches
  // min_runtime: a pass is due then (fairness.h rule 6).
  absl::Time fairness_recheck_ = absl::InfiniteFuture();
};

}  // namespace sublet::coordinator
