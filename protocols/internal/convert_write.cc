// Plain values -> Cap'n Proto builders. Lists are sized exactly; nothing here
// can fail for values built in this process.
#include <map>
#include <string>
#include <vector>

#include "protocols/internal/convert.h"

namespace sublet::protocols::internal {
namespace {

capnp::Text::Reader AsText(const std::string& s) {
  return capnp::Text::Reader(s.data(), s.size());  // std::string is NUL-terminated
}

template <typename ListBuilder>
void WriteTexts(const std::vector<std::string>& in, ListBuilder out) {
  for (unsigned i = 0; i < in.size(); ++i) out.set(i, AsText(in[i]));
}

template <typename ListBuilder, typename T>
void WriteNumbers(const std::vector<T>& in, ListBuilder out) {
  for (unsigned i = 0; i < in.size(); ++i) out.set(i, in[i]);
}

void WriteKeyValue(const std::string& key, const std::string& value, wire::KeyValue::Builder out) {
  out.setKey(AsText(key));
  out.setValue(AsText(value));
}

void WriteRankKey(const RankKey& in, wire::RankKey::Builder out) {
  out.setJobId(in.job_id);
  out.setAttempt(in.attempt);
  out.setRank(in.rank);
}

void WriteRankPlacement(const RankPlacement& in, wire::RankPlacement::Builder out) {
  out.setRank(in.rank);
  out.setNode(AsText(in.node));
  out.setLocalRank(in.local_rank);
  WriteNumbers(in.gpus, out.initGpus(in.gpus.size()));
  out.setState(AsText(in.state));
  out.setExitCode(in.exit_code);
}

void WriteJobEvent(const JobEvent& in, wire::JobEvent::Builder out) {
  out.setTimeUnixMs(in.time_unix_ms);
  out.setKind(AsText(in.kind));
  out.setWho(AsText(in.who));
  out.setMessage(AsText(in.message));
}

void WriteRankLaunch(const RankLaunch& in, wire::RankLaunch::Builder out) {
  WriteRankKey(in.key, out.initKey());
  WriteTexts(in.command, out.initCommand(in.command.size()));
  auto env = out.initEnv(in.env.size());
  for (unsigned i = 0; i < in.env.size(); ++i)
    WriteKeyValue(in.env[i].key, in.env[i].value, env[i]);
  WriteNumbers(in.gpus, out.initGpus(in.gpus.size()));
  out.setTenant(AsText(in.tenant));
  out.setTenantNumber(in.tenant_number);
  out.setStorageRoot(AsText(in.storage_root));
}

void WriteProgress(const Progress& in, wire::Progress::Builder out) {
  out.setStep(in.step);
  out.setLoss(in.loss);
  out.setTokensPerS(in.tokens_per_s);
  out.setCheckpointStep(in.checkpoint_step);
  out.setTimeUnixMs(in.time_unix_ms);
  out.setCheckpointBytes(in.checkpoint_bytes);
  out.setCheckpointPersistS(in.checkpoint_persist_s);
}

void WritePreemptNotice(const PreemptNotice& in, wire::PreemptNotice::Builder out) {
  WriteRankKey(in.key, out.initKey());
  out.setDeadlineUnixMs(in.deadline_unix_ms);
  out.setReason(AsText(in.reason));
  out.setSignal(in.signal);
}

void WriteReclaimInfo(const ReclaimInfo& in, wire::ReclaimInfo::Builder out) {
  out.setId(in.id);
  out.setWho(AsText(in.who));
  out.setReason(AsText(in.reason));
  out.setState(AsText(in.state));
  WriteTexts(in.requested_nodes, out.initRequestedNodes(in.requested_nodes.size()));
  out.setRequestedGpus(in.requested_gpus);
  out.setDeadlineUnixMs(in.deadline_unix_ms);
  out.setCreatedUnixMs(in.created_unix_ms);
  out.setReclaimedUnixMs(in.reclaimed_unix_ms);
  out.setReleasedUnixMs(in.released_unix_ms);
  auto nodes = out.initNodes(in.nodes.size());
  for (unsigned i = 0; i < in.nodes.size(); ++i) {
    nodes[i].setName(AsText(in.nodes[i].name));
    nodes[i].setState(AsText(in.nodes[i].state));
  }
  auto jobs = out.initJobs(in.jobs.size());
  for (unsigned i = 0; i < in.jobs.size(); ++i) {
    const ReclaimVictim& v = in.jobs[i];
    jobs[i].setJobId(v.job_id);
    jobs[i].setTenant(AsText(v.tenant));
    jobs[i].setState(AsText(v.state));
    jobs[i].setWhy(AsText(v.why));
    jobs[i].setCheckpointStep(v.checkpoint_step);
    jobs[i].setEstimatedSaveS(v.estimated_save_s);
  }
  WriteTexts(in.warnings, out.initWarnings(in.warnings.size()));
}

void WriteWorkerReport(const WorkerReport& in, wire::WorkerReport::Builder out) {
  out.setNode(AsText(in.node));
  out.setIncarnation(AsText(in.incarnation));
  out.setAddress(AsText(in.address));
  auto gpus = out.initGpus(in.gpus.size());
  for (unsigned i = 0; i < in.gpus.size(); ++i) {
    gpus[i].setIndex(in.gpus[i].index);
    gpus[i].setModel(AsText(in.gpus[i].model));
    gpus[i].setMemoryMib(in.gpus[i].memory_mib);
  }
  WriteNumbers(in.free_ports, out.initFreePorts(in.free_ports.size()));
  out.setIsolation(AsText(in.isolation));
  out.setInstance(AsText(in.instance));
  auto ranks = out.initRanks(in.ranks.size());
  for (unsigned i = 0; i < in.ranks.size(); ++i) {
    WriteRankKey(in.ranks[i].key, ranks[i].initKey());
    ranks[i].setExited(in.ranks[i].exited);
    ranks[i].setExitCode(in.ranks[i].exit_code);
    WriteProgress(in.ranks[i].progress, ranks[i].initProgress());
    ranks[i].setMessage(AsText(in.ranks[i].message));
  }
}

void WriteWorkerSync(const WorkerSync& in, wire::WorkerSync::Builder out) {
  out.setIncarnation(AsText(in.incarnation));
  auto desired = out.initDesired(in.desired.size());
  for (unsigned i = 0; i < in.desired.size(); ++i) WriteRankLaunch(in.desired[i], desired[i]);
  auto acked = out.initAckedExits(in.acked_exits.size());
  for (unsigned i = 0; i < in.acked_exits.size(); ++i) WriteRankKey(in.acked_exits[i], acked[i]);
  out.setStopGraceMs(in.stop_grace_ms);
  auto notices = out.initNotices(in.notices.size());
  for (unsigned i = 0; i < in.notices.size(); ++i) WritePreemptNotice(in.notices[i], notices[i]);
}

// One overload per Body alternative; std::visit picks it.
struct BodyWriter {
  wire::Envelope::Body::Builder body;

  void operator()(const SubmitJobRequest& in) {
    auto out = body.initSubmitJobRequest();
    WriteJobSpec(in.spec, out.initSpec());
    out.setSpecYaml(AsText(in.spec_yaml));
  }
  void operator()(const ListJobsRequest& in) { body.initListJobsRequest().setAll(in.all); }
  void operator()(const GetJobRequest& in) { body.initGetJobRequest().setJobId(in.job_id); }
  void operator()(const CancelJobRequest& in) { body.initCancelJobRequest().setJobId(in.job_id); }
  void operator()(const ListNodesRequest&) { body.initListNodesRequest(); }
  void operator()(const ReadLogsRequest& in) {
    auto out = body.initReadLogsRequest();
    out.setJobId(in.job_id);
    out.setRank(in.rank);
    out.setAttempt(in.attempt);
    out.setOffset(in.offset);
    out.setMaxBytes(in.max_bytes);
  }
  void operator()(const ErrorReply& in) {
    auto out = body.initErrorReply();
    out.setCode(in.code);
    out.setMessage(AsText(in.message));
  }
  void operator()(const SubmitJobReply& in) {
    auto out = body.initSubmitJobReply();
    out.setJobId(in.job_id);
    out.setArraySize(in.array_size);
  }
  void operator()(const JobListReply& in) {
    auto jobs = body.initJobListReply().initJobs(in.jobs.size());
    for (unsigned i = 0; i < in.jobs.size(); ++i) WriteJobInfo(in.jobs[i], jobs[i]);
  }
  void operator()(const JobReply& in) { WriteJobInfo(in.job, body.initJobReply().initJob()); }
  void operator()(const NodeListReply& in) {
    auto nodes = body.initNodeListReply().initNodes(in.nodes.size());
    for (unsigned i = 0; i < in.nodes.size(); ++i) WriteNodeInfo(in.nodes[i], nodes[i]);
  }
  void operator()(const LogsReply& in) {
    auto out = body.initLogsReply();
    out.setData(
        capnp::Data::Reader(reinterpret_cast<const kj::byte*>(in.data.data()), in.data.size()));
    out.setNextOffset(in.next_offset);
    out.setComplete(in.complete);
  }
  void operator()(const WorkerReport& in) { WriteWorkerReport(in, body.initWorkerReport()); }
  void operator()(const WorkerSync& in) { WriteWorkerSync(in, body.initWorkerSync()); }
  void operator()(const RankProgress& in) {
    auto out = body.initRankProgress();
    WriteRankKey(in.key, out.initKey());
    WriteProgress(in.progress, out.initProgress());
  }
  void operator()(const ReclaimRequest& in) {
    auto out = body.initReclaimRequest();
    WriteTexts(in.nodes, out.initNodes(in.nodes.size()));
    out.setGpus(in.gpus);
    out.setDeadlineMs(in.deadline_ms);
    out.setReason(AsText(in.reason));
  }
  void operator()(const ReleaseRequest& in) {
    auto out = body.initReleaseRequest();
    out.setReclaimId(in.reclaim_id);
    WriteTexts(in.nodes, out.initNodes(in.nodes.size()));
  }
  void operator()(const ListReclaimsRequest& in) {
    body.initListReclaimsRequest().setReclaimId(in.reclaim_id);
  }
  void operator()(const ReclaimListReply& in) {
    auto list = body.initReclaimListReply().initReclaims(in.reclaims.size());
    for (unsigned i = 0; i < in.reclaims.size(); ++i) WriteReclaimInfo(in.reclaims[i], list[i]);
  }
  void operator()(const PreemptNotice& in) { WritePreemptNotice(in, body.initPreemptNotice()); }
  void operator()(const ListAuditRequest& in) {
    auto out = body.initListAuditRequest();
    out.setSinceMs(in.since_ms);
    out.setLimit(in.limit);
  }
  void operator()(const ListTenantsRequest&) { body.initListTenantsRequest(); }
  void operator()(const TenantListReply& in) {
    auto out = body.initTenantListReply();
    out.setPolicies(in.policies);
    out.setPoolGpus(in.pool_gpus);
    auto list = out.initTenants(in.tenants.size());
    for (unsigned i = 0; i < in.tenants.size(); ++i) {
      const TenantInfo& t = in.tenants[i];
      auto w = list[i];
      w.setName(AsText(t.name));
      w.setHasQuota(t.quota_gpus.has_value());
      w.setQuotaGpus(t.quota_gpus.value_or(0));
      w.setHasBorrowLimit(t.borrow_limit_gpus.has_value());
      w.setBorrowLimitGpus(t.borrow_limit_gpus.value_or(0));
      w.setWeight(t.weight);
      w.setMaxPriority(static_cast<uint8_t>(t.max_priority));
      w.setInUseGpus(t.in_use_gpus);
      w.setBorrowedGpus(t.borrowed_gpus);
      w.setPendingJobs(t.pending_jobs);
      w.setPendingGpus(t.pending_gpus);
      w.setShare(t.share);
      w.setDecayedGpuSeconds(t.decayed_gpu_seconds);
      w.setGpuSeconds(t.gpu_seconds);
      w.setGpuSecondsBorrowed(t.gpu_seconds_borrowed);
      w.setGpuSecondsLost(t.gpu_seconds_lost);
      w.setQuotaInForceGpus(t.quota_in_force_gpus);
    }
  }
  void operator()(const AuditListReply& in) {
    auto entries = body.initAuditListReply().initEntries(in.entries.size());
    for (unsigned i = 0; i < in.entries.size(); ++i) {
      entries[i].setTimeUnixMs(in.entries[i].time_unix_ms);
      entries[i].setWho(AsText(in.entries[i].who));
      entries[i].setAction(AsText(in.entries[i].action));
      entries[i].setDetail(AsText(in.entries[i].detail));
    }
  }
  void operator()(const ReadRankLogRequest& in) {
    auto out = body.initReadRankLogRequest();
    WriteRankKey(in.key, out.initKey());
    out.setOffset(in.offset);
    out.setMaxBytes(in.max_bytes);
  }
};

}  // namespace

void WriteJobSpec(const JobSpec& in, wire::JobSpec::Builder out) {
  out.setName(AsText(in.name));
  out.setNodes(in.nodes);
  out.setGpusPerNode(in.gpus_per_node);
  WriteTexts(in.command, out.initCommand(in.command.size()));
  auto env = out.initEnv(in.env.size());
  unsigned i = 0;
  for (const auto& [key, value] : in.env) WriteKeyValue(key, value, env[i++]);
  out.setTensorParallel(in.tensor_parallel);
  out.setCheckpointEverySteps(in.checkpoint_every_steps);
  out.setCheckpointKeep(in.checkpoint_keep);
  out.setPriority(static_cast<wire::Priority>(in.priority));
  out.setMaxRestarts(in.max_restarts);
  out.setElasticMinNodes(in.elastic_min_nodes);
  out.setTimeLimitNanos(absl::ToInt64Nanoseconds(in.time_limit));
  out.setProgressTimeoutNanos(absl::ToInt64Nanoseconds(in.progress_timeout));
  out.setPreemptionSignal(AsText(in.preemption_signal));
  out.setLauncher(AsText(in.launcher));
  out.setElasticStartAny(in.elastic_start_any);
  auto deps = out.initDependsOn(static_cast<unsigned>(in.depends_on.size()));
  for (unsigned i = 0; i < in.depends_on.size(); ++i) {
    deps[i].setJob(in.depends_on[i].job);
    deps[i].setWhen(static_cast<wire::DependencyWhen>(in.depends_on[i].when));
  }
  out.setArray(AsText(in.array));
}

void WriteJobInfo(const JobInfo& in, wire::JobInfo::Builder out) {
  out.setId(in.id);
  out.setName(AsText(in.name));
  out.setTenant(AsText(in.tenant));
  out.setState(AsText(in.state));
  out.setReason(AsText(in.reason));
  out.setRestarts(in.restarts);
  out.setPreemptions(in.preemptions);
  out.setAttempt(in.attempt);
  WriteTexts(in.nodes, out.initNodes(in.nodes.size()));
  out.setLastCheckpointStep(in.last_checkpoint_step);
  out.setSubmitTimeUnixMs(in.submit_time_unix_ms);
  out.setStartTimeUnixMs(in.start_time_unix_ms);
  out.setEndTimeUnixMs(in.end_time_unix_ms);
  WriteJobSpec(in.spec, out.initSpec());
  WriteProgress(in.progress, out.initProgress());
  out.setGpuSeconds(in.gpu_seconds);
  out.setGpuSecondsLost(in.gpu_seconds_lost);
  out.setReclaimId(in.reclaim_id);
  out.setArrayId(in.array_id);
  out.setArrayIndex(in.array_index);
  out.setArraySize(in.array_size);
  out.setQueuePosition(in.queue_position);
  out.setPreemptWhy(AsText(in.preempt_why));
  out.setResumeStep(in.resume_step);
  auto ranks = out.initRanks(in.ranks.size());
  for (unsigned i = 0; i < in.ranks.size(); ++i) WriteRankPlacement(in.ranks[i], ranks[i]);
  auto events = out.initEvents(in.events.size());
  for (unsigned i = 0; i < in.events.size(); ++i) WriteJobEvent(in.events[i], events[i]);
}

void WriteNodeInfo(const NodeInfo& in, wire::NodeInfo::Builder out) {
  out.setName(AsText(in.name));
  out.setState(AsText(in.state));
  out.setGpus(in.gpus);
  out.setGpusFree(in.gpus_free);
  WriteNumbers(in.jobs, out.initJobs(in.jobs.size()));
  out.setAddress(AsText(in.address));
  out.setLastHeartbeatUnixMs(in.last_heartbeat_unix_ms);
  out.setReclaimId(in.reclaim_id);
  out.setIsolation(AsText(in.isolation));
}

void WriteEnvelope(const Envelope& in, wire::Envelope::Builder out) {
  out.setVersion(in.version);
  out.setRequestId(in.request_id);
  out.setToken(AsText(in.token));
  std::visit(BodyWriter{out.initBody()}, in.body);
}

}  // namespace sublet::protocols::internal
