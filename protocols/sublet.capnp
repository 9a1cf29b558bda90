# Wire format of every Sublet message. Mirrors protocols/messages.h field for
# field; protocols/codec.cc is the only code that reads or writes it.
#
# Compatibility: add fields only at the end of a struct, with the next ordinal;
# never renumber. Retyping a field (version 2 made every job and reclaim id
# UInt64, was Text) is allowed only together with a bump of kProtocolVersion
# (messages.h): the codec checks the envelope's version before it reads any
# body field (protocols/codec.cc), so a peer of another version is refused
# with FailedPrecondition instead of misreading the retyped field. Any other
# change that old peers cannot ignore bumps the version too.
#
# Job and reclaim ids are assigned from 1 up; 0 means "none".
@0xfb27aa936562792d;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("sublet::protocols::wire");

struct KeyValue {
  key @0 :Text;
  value @1 :Text;
}

enum Priority {
  low @0;
  normal @1;
  high @2;
}

struct JobSpec {
  name @0 :Text;
  nodes @1 :UInt32;
  gpusPerNode @2 :UInt32;
  command @3 :List(Text);
  env @4 :List(KeyValue);
  tensorParallel @5 :UInt32;
  checkpointEverySteps @6 :UInt32;
  checkpointKeep @7 :UInt32;
  priority @8 :Priority;
  maxRestarts @9 :UInt32;
  elasticMinNodes @10 :UInt32;
  timeLimitNanos @11 :Int64;  # 0: no limit
  progressTimeoutNanos @12 :Int64;  # 0: never
  preemptionSignal @13 :Text;  # "": SIGUSR1
  elasticStartAny @14 :Bool;
  dependsOn @15 :List(Dependency);
  array @16 :Text;  # "": not an array
  launcher @17 :Text;  # "": one process per GPU; "torchrun"
}

enum DependencyWhen {
  succeeded @0;
  failed @1;
  any @2;
}

struct Dependency {
  job @0 :UInt64;
  when @1 :DependencyWhen;
}

struct Progress {
  step @0 :Int64 = -1;
  loss @1 :Float64;
  tokensPerS @2 :Float64;
  checkpointStep @3 :Int64 = -1;
  timeUnixMs @4 :Int64;
  checkpointBytes @5 :Int64;
  checkpointPersistS @6 :Float64;
}

struct JobEvent {
  timeUnixMs @0 :Int64;
  kind @1 :Text;
  who @2 :Text;
  message @3 :Text;
}

struct RankPlacement {
  rank @0 :UInt32;
  node @1 :Text;
  localRank @2 :UInt32;
  gpus @3 :List(UInt32);
  state @4 :Text;
  exitCode @5 :Int32;
}

struct JobInfo {
  id @0 :UInt64;
  name @1 :Text;
  tenant @2 :Text;
  state @3 :Text;
  reason @4 :Text;
  restarts @5 :UInt32;
  preemptions @6 :UInt32;
  attempt @7 :UInt32;
  nodes @8 :List(Text);
  lastCheckpointStep @9 :Int64;
  submitTimeUnixMs @10 :Int64;
  startTimeUnixMs @11 :Int64;
  endTimeUnixMs @12 :Int64;
  spec @13 :JobSpec;
  ranks @14 :List(RankPlacement);
  events @15 :List(JobEvent);
  progress @16 :Progress;
  gpuSeconds @17 :Float64;
  gpuSecondsLost @18 :Float64;
  reclaimId @19 :UInt64;  # 0: none
  preemptWhy @20 :Text;
  resumeStep @21 :Int64 = -1;
  arrayId @22 :UInt64;       # 0: not an array task
  arrayIndex @23 :UInt32;
  arraySize @24 :UInt32;     # tasks in the array
  queuePosition @25 :UInt32; # a pending job's place in its tenant's queue (1: next); 0: none
}

struct NodeInfo {
  name @0 :Text;
  state @1 :Text;
  gpus @2 :UInt32;
  gpusFree @3 :UInt32;
  jobs @4 :List(UInt64);
  address @5 :Text;
  lastHeartbeatUnixMs @6 :Int64;
  reclaimId @7 :UInt64;  # 0: none
  isolation @8 :Text;
}

struct ReclaimVictim {
  jobId @0 :UInt64;
  tenant @1 :Text;
  state @2 :Text;
  why @3 :Text;
  checkpointStep @4 :Int64 = -1;
  estimatedSaveS @5 :Float64 = -1;
}

struct ReclaimNode {
  name @0 :Text;
  state @1 :Text;
}

struct ReclaimInfo {
  id @0 :UInt64;
  who @1 :Text;
  reason @2 :Text;
  state @3 :Text;
  requestedNodes @4 :List(Text);
  requestedGpus @5 :UInt32;
  deadlineUnixMs @6 :Int64;
  createdUnixMs @7 :Int64;
  reclaimedUnixMs @8 :Int64;
  releasedUnixMs @9 :Int64;
  nodes @10 :List(ReclaimNode);
  jobs @11 :List(ReclaimVictim);
  warnings @12 :List(Text);
}

# ---- tenant / admin API ----------------------------------------------------

# spec: the parsed spec (the CLI validates it before sending). specYaml, when
# not empty, is the spec as YAML text instead (the Python SDK): the
# coordinator parses it with the same parser and ignores `spec`.
struct SubmitJobRequest {
  spec @0 :JobSpec;
  specYaml @1 :Text;
}
struct ListJobsRequest { all @0 :Bool; }
struct GetJobRequest { jobId @0 :UInt64; }
struct CancelJobRequest { jobId @0 :UInt64; }
struct ListNodesRequest {}
struct ReadLogsRequest {
  jobId @0 :UInt64;
  rank @1 :UInt32;
  attempt @2 :UInt32;
  offset @3 :UInt64;
  maxBytes @4 :UInt32;
}

struct ReclaimRequest {
  nodes @0 :List(Text);
  gpus @1 :UInt32;
  deadlineMs @2 :Int64;
  reason @3 :Text;
}
struct ReleaseRequest {
  reclaimId @0 :UInt64;  # 0: release by node names
  nodes @1 :List(Text);
}
struct ListReclaimsRequest { reclaimId @0 :UInt64; }  # 0: every reclaim
struct ReclaimListReply { reclaims @0 :List(ReclaimInfo); }

struct ListAuditRequest {
  sinceMs @0 :Int64;  # 0: from the beginning
  limit @1 :UInt32;   # 0: 100
}
struct AuditEntry {
  timeUnixMs @0 :Int64;
  who @1 :Text;
  action @2 :Text;
  detail @3 :Text;
}
struct AuditListReply { entries @0 :List(AuditEntry); }

struct ListTenantsRequest {}
struct TenantInfo {
  name @0 :Text;
  hasQuota @1 :Bool;
  quotaGpus @2 :UInt32;
  hasBorrowLimit @3 :Bool;
  borrowLimitGpus @4 :UInt32;
  weight @5 :Float64;
  maxPriority @6 :UInt8;       # Priority
  inUseGpus @7 :UInt32;
  borrowedGpus @8 :UInt32;
  pendingJobs @9 :UInt32;
  pendingGpus @10 :UInt32;
  share @11 :Float64;
  decayedGpuSeconds @12 :Float64;
  gpuSeconds @13 :Float64;
  gpuSecondsBorrowed @14 :Float64;
  gpuSecondsLost @15 :Float64;
  quotaInForceGpus @16 :UInt32;
}
struct TenantListReply {
  tenants @0 :List(TenantInfo);
  policies @1 :Bool;           # quotas and fair share are configured
  poolGpus @2 :UInt32;
}

struct ErrorReply {
  code @0 :UInt32;  # absl::StatusCode number
  message @1 :Text;
}
struct SubmitJobReply {
  jobId @0 :UInt64;       # an array's: its first task's, which is the array's id
  arraySize @1 :UInt32;   # 0: not an array; else its tasks are jobId .. jobId+arraySize-1
}
struct JobListReply { jobs @0 :List(JobInfo); }
struct JobReply { job @0 :JobInfo; }
struct NodeListReply { nodes @0 :List(NodeInfo); }
struct LogsReply {
  data @0 :Data;
  nextOffset @1 :UInt64;
  complete @2 :Bool;
}

# ---- worker channel --------------------------------------------------------

struct GpuInfo {
  index @0 :UInt32;
  model @1 :Text;
  memoryMib @2 :UInt64;
}

struct RankKey {
  jobId @0 :UInt64;
  attempt @1 :UInt32;
  rank @2 :UInt32;
}

struct RankStatus {
  key @0 :RankKey;
  exited @1 :Bool;
  exitCode @2 :Int32;
  progress @3 :Progress;
  message @4 :Text;
}

struct RankProgress {
  key @0 :RankKey;
  progress @1 :Progress;
}

struct WorkerReport {
  node @0 :Text;
  incarnation @1 :Text;
  address @2 :Text;
  gpus @3 :List(GpuInfo);
  freePorts @4 :List(UInt32);
  ranks @5 :List(RankStatus);
  isolation @6 :Text;
  instance @7 :Text;
}

struct RankLaunch {
  key @0 :RankKey;
  command @1 :List(Text);
  env @2 :List(KeyValue);
  gpus @3 :List(UInt32);
  tenant @4 :Text;
  tenantNumber @5 :UInt32;
  storageRoot @6 :Text;
}

struct PreemptNotice {
  key @0 :RankKey;
  deadlineUnixMs @1 :Int64;
  reason @2 :Text;
  signal @3 :UInt32;  # 0: SIGUSR1
}

struct WorkerSync {
  incarnation @0 :Text;
  desired @1 :List(RankLaunch);
  ackedExits @2 :List(RankKey);
  stopGraceMs @3 :UInt32;
  notices @4 :List(PreemptNotice);
}

struct ReadRankLogRequest {
  key @0 :RankKey;
  offset @1 :UInt64;
  maxBytes @2 :UInt32;
}

# ---- the envelope ------------------------------------------------------------

struct Envelope {
  version @0 :UInt16;
  requestId @1 :UInt64;
  token @2 :Text;
  body :union {
    submitJobRequest @3 :SubmitJobRequest;
    listJobsRequest @4 :ListJobsRequest;
    getJobRequest @5 :GetJobRequest;
    cancelJobRequest @6 :CancelJobRequest;
    listNodesRequest @7 :ListNodesRequest;
    readLogsRequest @8 :ReadLogsRequest;
    errorReply @9 :ErrorReply;
    submitJobReply @10 :SubmitJobReply;
    jobListReply @11 :JobListReply;
    jobReply @12 :JobReply;
    nodeListReply @13 :NodeListReply;
    logsReply @14 :LogsReply;
    workerReport @15 :WorkerReport;
    workerSync @16 :WorkerSync;
    readRankLogRequest @17 :ReadRankLogRequest;
    rankProgress @18 :RankProgress;
    reclaimRequest @19 :ReclaimRequest;
    releaseRequest @20 :ReleaseRequest;
    listReclaimsRequest @21 :ListReclaimsRequest;
    reclaimListReply @22 :ReclaimListReply;
    preemptNotice @23 :PreemptNotice;
    listAuditRequest @24 :ListAuditRequest;
    auditListReply @25 :AuditListReply;
    listTenantsRequest @26 :ListTenantsRequest;
    tenantListReply @27 :TenantListReply;
  }
}
