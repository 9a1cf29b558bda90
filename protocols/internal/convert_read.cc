// Cap'n Proto readers -> plain values. Every list is checked against
// CodecLimits::max_list_elements before anything is copied out of it; every
// enum and union member is checked against the values this build knows.
#include <fmt/format.h>

#include <string>
#include <vector>

#include "protocols/internal/convert.h"

namespace sublet::protocols::internal {
namespace {

std::string ToString(capnp::Text::Reader t) { return std::string(t.begin(), t.size()); }

// Elements every list of the message being decoded may still have, across
// all lists (CodecLimits::max_total_elements). Decoding is synchronous, so a
// per-thread budget, reset by ReadEnvelope, is enough.
thread_local uint64_t t_elements_left = 0;

absl::Status CheckListSize(const char* field, size_t size, const CodecLimits& limits) {
  if (size > limits.max_list_elements) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: list of {} elements exceeds the limit of {}", field, size, limits.max_list_elements));
  }
  if (size > t_elements_left) {
    return absl::InvalidArgumentError(
        fmt::format("{}: the message has more than {} list elements in all", field,
                    limits.max_total_elements));
  }
  t_elements_left -= size;
  return absl::OkStatus();
}

// Reads a list of structs with `read_one(item_reader, item&) -> Status`.
template <typename T, typename ListReader, typename ReadOne>
absl::Status ReadList(const char* field, ListReader in, const CodecLimits& limits,
                      std::vector<T>& out, ReadOne read_one) {
  SUBLET_RETURN_IF_ERROR(CheckListSize(field, in.size(), limits));
  out.clear();
  out.reserve(in.size());
  for (auto item : in) SUBLET_RETURN_IF_ERROR(read_one(item, out.emplace_back()));
  return absl::OkStatus();
}

template <typename ListReader>
absl::Status ReadTexts(const char* field, ListReader in, const CodecLimits& limits,
                       std::vector<std::string>& out) {
  return ReadList(field, in, limits, out, [](capnp::Text::Reader t, std::string& s) {
    s = ToString(t);
    return absl::OkStatus();
  });
}

template <typename T, typename ListReader>
absl::Status ReadNumbers(const char* field, ListReader in, const CodecLimits& limits,
                         std::vector<T>& out) {
  return ReadList(field, in, limits, out, [](T n, T& v) {
    v = n;
    return absl::OkStatus();
  });
}

absl::Status Read(wire::KeyValue::Reader in, const CodecLimits&, KeyValue& out) {
  out.key = ToString(in.getKey());
  out.value = ToString(in.getValue());
  return absl::OkStatus();
}

absl::Status Read(wire::RankKey::Reader in, const CodecLimits&, RankKey& out) {
  out.job_id = in.getJobId();
  out.attempt = in.getAttempt();
  out.rank = in.getRank();
  return absl::OkStatus();
}

absl::Status Read(wire::RankPlacement::Reader in, const CodecLimits& limits, RankPlacement& out) {
  out.rank = in.getRank();
  out.node = ToString(in.getNode());
  out.local_rank = in.getLocalRank();
  SUBLET_RETURN_IF_ERROR(ReadNumbers("RankPlacement.gpus", in.getGpus(), limits, out.gpus));
  out.state = ToString(in.getState());
  out.exit_code = in.getExitCode();
  return absl::OkStatus();
}

absl::Status Read(wire::JobEvent::Reader in, const CodecLimits&, JobEvent& out) {
  out.time_unix_ms = in.getTimeUnixMs();
  out.kind = ToString(in.getKind());
  out.who = ToString(in.getWho());
  out.message = ToString(in.getMessage());
  return absl::OkStatus();
}

absl::Status Read(wire::JobInfo::Reader in, const CodecLimits& limits, JobInfo& out) {
  return ReadJobInfo(in, limits, out);
}
absl::Status Read(wire::NodeInfo::Reader in, const CodecLimits& limits, NodeInfo& out) {
  return ReadNodeInfo(in, limits, out);
}

absl::Status Read(wire::GpuInfo::Reader in, const CodecLimits&, GpuInfo& out) {
  out.index = in.getIndex();
  out.model = ToString(in.getModel());
  out.memory_mib = in.getMemoryMib();
  return absl::OkStatus();
}

void ReadProgress(wire::Progress::Reader in, Progress& out) {
  out.step = in.getStep();
  out.loss = in.getLoss();
  out.tokens_per_s = in.getTokensPerS();
  out.checkpoint_step = in.getCheckpointStep();
  out.time_unix_ms = in.getTimeUnixMs();
  out.checkpoint_bytes = in.getCheckpointBytes();
  out.checkpoint_persist_s = in.getCheckpointPersistS();
}

absl::Status Read(wire::RankStatus::Reader in, const CodecLimits& limits, RankStatus& out) {
  SUBLET_RETURN_IF_ERROR(Read(in.getKey(), limits, out.key));
  out.exited = in.getExited();
  out.exit_code = in.getExitCode();
  ReadProgress(in.getProgress(), out.progress);
  out.message = ToString(in.getMessage());
  return absl::OkStatus();
}

absl::Status Read(wire::RankProgress::Reader in, const CodecLimits& limits, RankProgress& out) {
  SUBLET_RETURN_IF_ERROR(Read(in.getKey(), limits, out.key));
  ReadProgress(in.getProgress(), out.progress);
  return absl::OkStatus();
}

absl::Status Read(wire::RankLaunch::Reader in, const CodecLimits& limits, RankLaunch& out) {
  SUBLET_RETURN_IF_ERROR(Read(in.getKey(), limits, out.key));
  SUBLET_RETURN_IF_ERROR(ReadTexts("RankLaunch.command", in.getCommand(), limits, out.command));
  SUBLET_RETURN_IF_ERROR(
      ReadList("RankLaunch.env", in.getEnv(), limits, out.env,
               [&](auto kv, KeyValue& value) { return Read(kv, limits, value); }));
  SUBLET_RETURN_IF_ERROR(ReadNumbers("RankLaunch.gpus", in.getGpus(), limits, out.gpus));
  out.tenant = ToString(in.getTenant());
  out.tenant_number = in.getTenantNumber();
  out.storage_root = ToString(in.getStorageRoot());
  return absl::OkStatus();
}

absl::Status Read(wire::PreemptNotice::Reader in, const CodecLimits& limits, PreemptNotice& out);
absl::Status Read(wire::ReclaimVictim::Reader in, const CodecLimits&, ReclaimVictim& out);
absl::Status Read(wire::ReclaimNode::Reader in, const CodecLimits&, ReclaimNode& out);
absl::Status Read(wire::ReclaimInfo::Reader in, const CodecLimits& limits, ReclaimInfo& out);
absl::Status Read(wire::AuditEntry::Reader in, const CodecLimits&, AuditEntry& out);
absl::Status Read(wire::TenantInfo::Reader in, const CodecLimits&, TenantInfo& out);

// Adapts the overloads above for ReadList.
auto ReadOne(const CodecLimits& limits) {
  return [&limits](auto reader, auto& value) { return Read(reader, limits, value); };
}

absl::Status Read(wire::PreemptNotice::Reader in, const CodecLimits& limits, PreemptNotice& out) {
  SUBLET_RETURN_IF_ERROR(Read(in.getKey(), limits, out.key));
  out.deadline_unix_ms = in.getDeadlineUnixMs();
  out.reason = ToString(in.getReason());
  out.signal = in.getSignal();
  return absl::OkStatus();
}

absl::Status Read(wire::ReclaimVictim::Reader in, const CodecLimits&, ReclaimVictim& out) {
  out.job_id = in.getJobId();
  out.tenant = ToString(in.getTenant());
  out.state = ToString(in.getState());
  out.why = ToString(in.getWhy());
  out.checkpoint_step = in.getCheckpointStep();
  out.estimated_save_s = in.getEstimatedSaveS();
  return absl::OkStatus();
}

absl::Status Read(wire::ReclaimNode::Reader in, const CodecLimits&, ReclaimNode& out) {
  out.name = ToString(in.getName());
  out.state = ToString(in.getState());
  return absl::OkStatus();
}

absl::Status Read(wire::ReclaimInfo::Reader in, const CodecLimits& limits, ReclaimInfo& out) {
  out.id = in.getId();
  out.who = ToString(in.getWho());
  out.reason = ToString(in.getReason());
  out.state = ToString(in.getState());
  SUBLET_RETURN_IF_ERROR(
      ReadTexts("ReclaimInfo.requestedNodes", in.getRequestedNodes(), limits, out.requested_nodes));
  out.requested_gpus = in.getRequestedGpus();
  out.deadline_unix_ms = in.getDeadlineUnixMs();
  out.created_unix_ms = in.getCreatedUnixMs();
  out.reclaimed_unix_ms = in.getReclaimedUnixMs();
  out.released_unix_ms = in.getReleasedUnixMs();
  SUBLET_RETURN_IF_ERROR(
      ReadList("ReclaimInfo.nodes", in.getNodes(), limits, out.nodes, ReadOne(limits)));
  SUBLET_RETURN_IF_ERROR(
      ReadList("ReclaimInfo.jobs", in.getJobs(), limits, out.jobs, ReadOne(limits)));
  return ReadTexts("ReclaimInfo.warnings", in.getWarnings(), limits, out.warnings);
}

// ---- bodies ------------------------------------------------------------------

absl::Status Read(wire::SubmitJobRequest::Reader in, const CodecLimits& limits,
                  SubmitJobRequest& out) {
  out.spec_yaml = ToString(in.getSpecYaml());
  return ReadJobSpec(in.getSpec(), limits, out.spec);
}
absl::Status Read(wire::ListJobsRequest::Reader in, const CodecLimits&, ListJobsRequest& out) {
  out.all = in.getAll();
  return absl::OkStatus();
}
absl::Status Read(wire::GetJobRequest::Reader in, const CodecLimits&, GetJobRequest& out) {
  out.job_id = in.getJobId();
  return absl::OkStatus();
}
absl::Status Read(wire::CancelJobRequest::Reader in, const CodecLimits&, CancelJobRequest& out) {
  out.job_id = in.getJobId();
  return absl::OkStatus();
}
absl::Status Read(wire::ListNodesRequest::Reader, const CodecLimits&, ListNodesRequest&) {
  return absl::OkStatus();
}
absl::Status Read(wire::ReadLogsRequest::Reader in, const CodecLimits&, ReadLogsRequest& out) {
  out.job_id = in.getJobId();
  out.rank = in.getRank();
  out.attempt = in.getAttempt();
  out.offset = in.getOffset();
  out.max_bytes = in.getMaxBytes();
  return absl::OkStatus();
}
absl::Status Read(wire::ErrorReply::Reader in, const CodecLimits&, ErrorReply& out) {
  out.code = in.getCode();
  out.message = ToString(in.getMessage());
  return absl::OkStatus();
}
absl::Status Read(wire::SubmitJobReply::Reader in, const CodecLimits&, SubmitJobReply& out) {
  out.job_id = in.getJobId();
  out.array_size = in.getArraySize();
  return absl::OkStatus();
}
absl::Status Read(wire::JobListReply::Reader in, const CodecLimits& limits, JobListReply& out) {
  return ReadList("JobListReply.jobs", in.getJobs(), limits, out.jobs, ReadOne(limits));
}
absl::Status Read(wire::JobReply::Reader in, const CodecLimits& limits, JobReply& out) {
  return ReadJobInfo(in.getJob(), limits, out.job);
}
absl::Status Read(wire::NodeListReply::Reader in, const CodecLimits& limits, NodeListReply& out) {
  return ReadList("NodeListReply.nodes", in.getNodes(), limits, out.nodes, ReadOne(limits));
}
absl::Status Read(wire::LogsReply::Reader in, const CodecLimits&, LogsReply& out) {
  capnp::Data::Reader data = in.getData();
  out.data.assign(reinterpret_cast<const char*>(data.begin()), data.size());
  out.next_offset = in.getNextOffset();
  out.complete = in.getComplete();
  return absl::OkStatus();
}
absl::Status Read(wire::WorkerReport::Reader in, const CodecLimits& limits, WorkerReport& out) {
  out.node = ToString(in.getNode());
  out.incarnation = ToString(in.getIncarnation());
  out.address = ToString(in.getAddress());
  SUBLET_RETURN_IF_ERROR(
      ReadList("WorkerReport.gpus", in.getGpus(), limits, out.gpus, ReadOne(limits)));
  SUBLET_RETURN_IF_ERROR(
      ReadNumbers("WorkerReport.freePorts", in.getFreePorts(), limits, out.free_ports));
  out.isolation = ToString(in.getIsolation());
  out.instance = ToString(in.getInstance());
  return ReadList("WorkerReport.ranks", in.getRanks(), limits, out.ranks, ReadOne(limits));
}
absl::Status Read(wire::WorkerSync::Reader in, const CodecLimits& limits, WorkerSync& out) {
  out.incarnation = ToString(in.getIncarnation());
  SUBLET_RETURN_IF_ERROR(
      ReadList("WorkerSync.desired", in.getDesired(), limits, out.desired, ReadOne(limits)));
  SUBLET_RETURN_IF_ERROR(ReadList("WorkerSync.ackedExits", in.getAckedExits(), limits,
                                  out.acked_exits, ReadOne(limits)));
  out.stop_grace_ms = in.getStopGraceMs();
  return ReadList("WorkerSync.notices", in.getNotices(), limits, out.notices, ReadOne(limits));
}
absl::Status Read(wire::ReclaimRequest::Reader in, const CodecLimits& limits, ReclaimRequest& out) {
  SUBLET_RETURN_IF_ERROR(ReadTexts("ReclaimRequest.nodes", in.getNodes(), limits, out.nodes));
  out.gpus = in.getGpus();
  out.deadline_ms = in.getDeadlineMs();
  out.reason = ToString(in.getReason());
  return absl::OkStatus();
}
absl::Status Read(wire::ReleaseRequest::Reader in, const CodecLimits& limits, ReleaseRequest& out) {
  out.reclaim_id = in.getReclaimId();
  return ReadTexts("ReleaseRequest.nodes", in.getNodes(), limits, out.nodes);
}
absl::Status Read(wire::ListReclaimsRequest::Reader in, const CodecLimits&,
                  ListReclaimsRequest& out) {
  out.reclaim_id = in.getReclaimId();
  return absl::OkStatus();
}
absl::Status Read(wire::ReclaimListReply::Reader in, const CodecLimits& limits,
                  ReclaimListReply& out) {
  return ReadList("ReclaimListReply.reclaims", in.getReclaims(), limits, out.reclaims,
                  ReadOne(limits));
}
absl::Status Read(wire::ReadRankLogRequest::Reader in, const CodecLimits& limits,
                  ReadRankLogRequest& out) {
  SUBLET_RETURN_IF_ERROR(Read(in.getKey(), limits, out.key));
  out.offset = in.getOffset();
  out.max_bytes = in.getMaxBytes();
  return absl::OkStatus();
}

absl::Status Read(wire::ListAuditRequest::Reader in, const CodecLimits&, ListAuditRequest& out) {
  out.since_ms = in.getSinceMs();
  out.limit = in.getLimit();
  return absl::OkStatus();
}
absl::Status Read(wire::AuditEntry::Reader in, const CodecLimits&, AuditEntry& out) {
  out.time_unix_ms = in.getTimeUnixMs();
  out.who = ToString(in.getWho());
  out.action = ToString(in.getAction());
  out.detail = ToString(in.getDetail());
  return absl::OkStatus();
}
absl::Status Read(wire::ListTenantsRequest::Reader, const CodecLimits&, ListTenantsRequest&) {
  return absl::OkStatus();
}
absl::Status Read(wire::TenantInfo::Reader in, const CodecLimits&, TenantInfo& out) {
  out.name = ToString(in.getName());
  if (in.getHasQuota()) out.quota_gpus = in.getQuotaGpus();
  if (in.getHasBorrowLimit()) out.borrow_limit_gpus = in.getBorrowLimitGpus();
  out.weight = in.getWeight();
  if (in.getMaxPriority() > static_cast<uint8_t>(Priority::kHigh)) {
    return absl::InvalidArgumentError(
        fmt::format("TenantInfo.maxPriority: {} is not a priority", in.getMaxPriority()));
  }
  out.max_priority = static_cast<Priority>(in.getMaxPriority());
  out.in_use_gpus = in.getInUseGpus();
  out.borrowed_gpus = in.getBorrowedGpus();
  out.pending_jobs = in.getPendingJobs();
  out.pending_gpus = in.getPendingGpus();
  out.share = in.getShare();
  out.decayed_gpu_seconds = in.getDecayedGpuSeconds();
  out.gpu_seconds = in.getGpuSeconds();
  out.gpu_seconds_borrowed = in.getGpuSecondsBorrowed();
  out.gpu_seconds_lost = in.getGpuSecondsLost();
  out.quota_in_force_gpus = in.getQuotaInForceGpus();
  return absl::OkStatus();
}
absl::Status Read(wire::TenantListReply::Reader in, const CodecLimits& limits, TenantListReply& out) {
  out.policies = in.getPolicies();
  out.pool_gpus = in.getPoolGpus();
  return ReadList("TenantListReply.tenants", in.getTenants(), limits, out.tenants, ReadOne(limits));
}
absl::Status Read(wire::AuditListReply::Reader in, const CodecLimits& limits, AuditListReply& out) {
  return ReadList("AuditListReply.entries", in.getEntries(), limits, out.entries, ReadOne(limits));
}

template <typename T, typename Reader>
absl::Status ReadBody(Reader in, const CodecLimits& limits, Body& out) {
  T value;
  SUBLET_RETURN_IF_ERROR(Read(in, limits, value));
  out = std::move(value);
  return absl::OkStatus();
}

}  // namespace

absl::Status ReadJobSpec(wire::JobSpec::Reader in, const CodecLimits& limits, JobSpec& out) {
  out.name = ToString(in.getName());
  out.nodes = in.getNodes();
  out.gpus_per_node = in.getGpusPerNode();
  SUBLET_RETURN_IF_ERROR(ReadTexts("JobSpec.command", in.getCommand(), limits, out.command));
  auto env = in.getEnv();
  SUBLET_RETURN_IF_ERROR(CheckListSize("JobSpec.env", env.size(), limits));
  out.env.clear();
  for (auto kv : env) {
    if (!out.env.emplace(ToString(kv.getKey()), ToString(kv.getValue())).second) {
      return absl::InvalidArgumentError("JobSpec.env: duplicate key");
    }
  }
  out.tensor_parallel = in.getTensorParallel();
  out.checkpoint_every_steps = in.getCheckpointEverySteps();
  out.checkpoint_keep = in.getCheckpointKeep();
  auto priority = static_cast<uint16_t>(in.getPriority());
  if (priority > static_cast<uint16_t>(Priority::kHigh)) {
    return absl::InvalidArgumentError(fmt::format("JobSpec.priority: unknown value {}", priority));
  }
  out.priority = static_cast<Priority>(priority);
  out.max_restarts = in.getMaxRestarts();
  out.elastic_min_nodes = in.getElasticMinNodes();
  out.time_limit = absl::Nanoseconds(in.getTimeLimitNanos());
  out.progress_timeout = absl::Nanoseconds(in.getProgressTimeoutNanos());
  out.preemption_signal = ToString(in.getPreemptionSignal());
  out.launcher = ToString(in.getLauncher());
  out.elastic_start_any = in.getElasticStartAny();
  auto deps = in.getDependsOn();
  SUBLET_RETURN_IF_ERROR(CheckListSize("JobSpec.dependsOn", deps.size(), limits));
  out.depends_on.clear();
  for (auto d : deps) {
    auto when = static_cast<uint16_t>(d.getWhen());
    if (when > static_cast<uint16_t>(DependencyWhen::kAny)) {
      return absl::InvalidArgumentError(
          fmt::format("JobSpec.dependsOn.when: unknown value {}", when));
    }
    out.depends_on.push_back({d.getJob(), static_cast<DependencyWhen>(when)});
  }
  out.array = ToString(in.getArray());
  return absl::OkStatus();
}

absl::Status ReadJobInfo(wire::JobInfo::Reader in, const CodecLimits& limits, JobInfo& out) {
  out.id = in.getId();
  out.name = ToString(in.getName());
  out.tenant = ToString(in.getTenant());
  out.state = ToString(in.getState());
  out.reason = ToString(in.getReason());
  out.restarts = in.getRestarts();
  out.preemptions = in.getPreemptions();
  out.attempt = in.getAttempt();
  SUBLET_RETURN_IF_ERROR(ReadTexts("JobInfo.nodes", in.getNodes(), limits, out.nodes));
  out.last_checkpoint_step = in.getLastCheckpointStep();
  out.submit_time_unix_ms = in.getSubmitTimeUnixMs();
  out.start_time_unix_ms = in.getStartTimeUnixMs();
  out.end_time_unix_ms = in.getEndTimeUnixMs();
  SUBLET_RETURN_IF_ERROR(ReadJobSpec(in.getSpec(), limits, out.spec));
  ReadProgress(in.getProgress(), out.progress);
  out.gpu_seconds = in.getGpuSeconds();
  out.gpu_seconds_lost = in.getGpuSecondsLost();
  out.reclaim_id = in.getReclaimId();
  out.preempt_why = ToString(in.getPreemptWhy());
  out.resume_step = in.getResumeStep();
  out.array_id = in.getArrayId();
  out.array_index = in.getArrayIndex();
  out.array_size = in.getArraySize();
  out.queue_position = in.getQueuePosition();
  SUBLET_RETURN_IF_ERROR(
      ReadList("JobInfo.ranks", in.getRanks(), limits, out.ranks, ReadOne(limits)));
  return ReadList("JobInfo.events", in.getEvents(), limits, out.events, ReadOne(limits));
}

absl::Status ReadNodeInfo(wire::NodeInfo::Reader in, const CodecLimits& limits, NodeInfo& out) {
  out.name = ToString(in.getName());
  out.state = ToString(in.getState());
  out.gpus = in.getGpus();
  out.gpus_free = in.getGpusFree();
  SUBLET_RETURN_IF_ERROR(ReadNumbers("NodeInfo.jobs", in.getJobs(), limits, out.jobs));
  out.address = ToString(in.getAddress());
  out.last_heartbeat_unix_ms = in.getLastHeartbeatUnixMs();
  out.reclaim_id = in.getReclaimId();
  out.isolation = ToString(in.getIsolation());
  return absl::OkStatus();
}

absl::Status ReadEnvelope(wire::Envelope::Reader in, const CodecLimits& limits, Envelope& out) {
  t_elements_left = limits.max_total_elements;
  out.version = in.getVersion();
  out.request_id = in.getRequestId();
  out.token = ToString(in.getToken());
  auto body = in.getBody();
  using W = wire::Envelope::Body;
  switch (body.which()) {
    case W::SUBMIT_JOB_REQUEST:
      return ReadBody<SubmitJobRequest>(body.getSubmitJobRequest(), limits, out.body);
    case W::LIST_JOBS_REQUEST:
      return ReadBody<ListJobsRequest>(body.getListJobsRequest(), limits, out.body);
    case W::GET_JOB_REQUEST:
      return ReadBody<GetJobRequest>(body.getGetJobRequest(), limits, out.body);
    case W::CANCEL_JOB_REQUEST:
      return ReadBody<CancelJobRequest>(body.getCancelJobRequest(), limits, out.body);
    case W::LIST_NODES_REQUEST:
      return ReadBody<ListNodesRequest>(body.getListNodesRequest(), limits, out.body);
    case W::READ_LOGS_REQUEST:
      return ReadBody<ReadLogsRequest>(body.getReadLogsRequest(), limits, out.body);
    case W::ERROR_REPLY:
      return ReadBody<ErrorReply>(body.getErrorReply(), limits, out.body);
    case W::SUBMIT_JOB_REPLY:
      return ReadBody<SubmitJobReply>(body.getSubmitJobReply(), limits, out.body);
    case W::JOB_LIST_REPLY:
      return ReadBody<JobListReply>(body.getJobListReply(), limits, out.body);
    case W::JOB_REPLY:
      return ReadBody<JobReply>(body.getJobReply(), limits, out.body);
    case W::NODE_LIST_REPLY:
      return ReadBody<NodeListReply>(body.getNodeListReply(), limits, out.body);
    case W::LOGS_REPLY:
      return ReadBody<LogsReply>(body.getLogsReply(), limits, out.body);
    case W::WORKER_REPORT:
      return ReadBody<WorkerReport>(body.getWorkerReport(), limits, out.body);
    case W::WORKER_SYNC:
      return ReadBody<WorkerSync>(body.getWorkerSync(), limits, out.body);
    case W::READ_RANK_LOG_REQUEST:
      return ReadBody<ReadRankLogRequest>(body.getReadRankLogRequest(), limits, out.body);
    case W::RANK_PROGRESS:
      return ReadBody<RankProgress>(body.getRankProgress(), limits, out.body);
    case W::RECLAIM_REQUEST:
      return ReadBody<ReclaimRequest>(body.getReclaimRequest(), limits, out.body);
    case W::RELEASE_REQUEST:
      return ReadBody<ReleaseRequest>(body.getReleaseRequest(), limits, out.body);
    case W::LIST_RECLAIMS_REQUEST:
      return ReadBody<ListReclaimsRequest>(body.getListReclaimsRequest(), limits, out.body);
    case W::RECLAIM_LIST_REPLY:
      return ReadBody<ReclaimListReply>(body.getReclaimListReply(), limits, out.body);
    case W::PREEMPT_NOTICE:
      return ReadBody<PreemptNotice>(body.getPreemptNotice(), limits, out.body);
    case W::LIST_AUDIT_REQUEST:
      return ReadBody<ListAuditRequest>(body.getListAuditRequest(), limits, out.body);
    case W::AUDIT_LIST_REPLY:
      return ReadBody<AuditListReply>(body.getAuditListReply(), limits, out.body);
    case W::LIST_TENANTS_REQUEST:
      return ReadBody<ListTenantsRequest>(body.getListTenantsRequest(), limits, out.body);
    case W::TENANT_LIST_REPLY:
      return ReadBody<TenantListReply>(body.getTenantListReply(), limits, out.body);
  }
  return absl::InvalidArgumentError(
      fmt::format("unknown message body {}", static_cast<uint16_t>(body.which())));
}

}  // namespace sublet::protocols::internal
