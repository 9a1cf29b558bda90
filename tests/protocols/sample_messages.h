// Fully populated sample values for codec tests: every field differs from its
// default, so a field the codec forgets to carry fails the round trip.
#pragma once

#include <string>
#include <vector>

#include "protocols/messages.h"

namespace sublet::protocols::samples {

inline JobSpec SampleSpec() {
  JobSpec spec;
  spec.name = "gpt-tiny";
  spec.nodes = 2;
  spec.gpus_per_node = 4;
  spec.command = {"sublet-train", "--model", "tiny", "--steps", "400"};
  spec.env = {{"SUBLET_LOG_LEVEL", "info"}, {"OMP_NUM_THREADS", "4"}};
  spec.tensor_parallel = 2;
  spec.checkpoint_every_steps = 50;
  spec.checkpoint_keep = 5;
  spec.priority = Priority::kHigh;
  spec.max_restarts = 3;
  spec.elastic_min_nodes = 1;
  spec.time_limit = absl::Hours(2) + absl::Milliseconds(5);
  spec.progress_timeout = absl::Minutes(10);
  spec.preemption_signal = "SIGTERM";
  spec.elastic_start_any = true;
  spec.depends_on = {{12, DependencyWhen::kSucceeded}, {uint64_t{1} << 63, DependencyWhen::kAny}};
  spec.array = "0-99%8";
  return spec;
}

inline RankKey SampleKey(uint32_t rank) { return RankKey{42, 3, rank}; }

inline Progress SampleProgress() {
  return Progress{120, 3.25, 51234.5, 100, 1'700'000'000'900, 1 << 30, 2.5};
}

inline JobInfo SampleJob(uint64_t id) {
  JobInfo job;
  job.id = id;
  job.name = "gpt-tiny";
  job.tenant = "acme";
  job.state = "running";
  job.reason = "scheduled on n1,n2";
  job.restarts = 1;
  job.preemptions = 2;
  job.attempt = 4;
  job.nodes = {"n1", "n2"};
  job.last_checkpoint_step = 400;
  job.submit_time_unix_ms = 1'700'000'000'000;
  job.start_time_unix_ms = 1'700'000'001'000;
  job.end_time_unix_ms = 1'700'000'002'000;
  job.spec = SampleSpec();
  job.progress = SampleProgress();
  job.ranks = {RankPlacement{0, "n1", 0, {0, 1}, "running", 0},
               RankPlacement{1, "n2", 1, {2}, "exited", 137}};
  job.events = {JobEvent{1'700'000'000'000, "submitted", "acme", "job submitted"}};
  job.gpu_seconds = 1234.5;
  job.gpu_seconds_lost = 12.25;
  job.reclaim_id = 7;
  job.preempt_why = "on node n2, which reclaim 7 takes";
  job.resume_step = 400;
  job.array_id = id - 3;
  job.array_index = 3;
  job.array_size = 100;
  job.queue_position = 3;
  return job;
}

inline NodeInfo SampleNode(const std::string& name) {
  return NodeInfo{name, "draining", 8, 6, {1, 2}, "10.0.0.7", 1'700'000'000'500, 7, "sandbox"};
}

inline WorkerReport SampleReport() {
  return WorkerReport{
      "n1",           "inc-7f3a",
      "10.0.0.7",     {GpuInfo{0, "emulated", 81920}, GpuInfo{1, "H100", 81559}},
      {29500, 29501}, {RankStatus{SampleKey(0), false, 0, SampleProgress(), ""},
       RankStatus{SampleKey(1), true, 1, Progress{}, "DeadlineExceeded: allreduce"}},
      "sandbox",      "instance-19c2"};
}

inline WorkerSync SampleSync() {
  RankLaunch launch{
      SampleKey(1), {"sublet-train", "--steps", "10"}, {{"SUBLET_RANK", "1"}}, {2, 3},
      "acme",       4,
      "/srv/sublet/storage"};
  return WorkerSync{"inc-7f3a", {launch}, {SampleKey(0)}, 2500,
                    {PreemptNotice{SampleKey(1), 1'700'000'060'000, "reclaim 7", 15}}};
}

inline ReclaimInfo SampleReclaim(uint64_t id) {
  ReclaimInfo r;
  r.id = id;
  r.who = "infra";
  r.reason = "urgent eval";
  r.state = "draining";
  r.requested_nodes = {"n2"};
  r.requested_gpus = 8;
  r.deadline_unix_ms = 1'700'000'060'000;
  r.created_unix_ms = 1'700'000'000'000;
  r.reclaimed_unix_ms = 1'700'000'030'000;
  r.released_unix_ms = 1'700'000'090'000;
  r.nodes = {ReclaimNode{"n2", "reclaimed"}};
  r.jobs = {ReclaimVictim{1, "acme", "acknowledged", "runs on n2", 400, 3.5}};
  r.warnings = {"job 1 needs about 90s to save; the deadline is 60s"};
  return r;
}

// One sample of every Body alternative, in variant order.
inline std::vector<Body> AllBodies() {
  return {SubmitJobRequest{SampleSpec(), "name: from-yaml\ncommand: [\"true\"]\n"},
          ListJobsRequest{true},
          GetJobRequest{42},
          CancelJobRequest{43},
          ListNodesRequest{},
          ReadLogsRequest{42, 3, 2, 4096, 65536},
          ErrorReply{5, "job 9 not found"},
          SubmitJobReply{44, 100},
          JobListReply{{SampleJob(1), SampleJob(2)}},
          JobReply{SampleJob(3)},
          NodeListReply{{SampleNode("n1"), SampleNode("n2")}},
          LogsReply{std::string("step 1\n\0\xff binary", 17), 8192, true},
          SampleReport(),
          SampleSync(),
          ReadRankLogRequest{SampleKey(2), 100, 200},
          RankProgress{SampleKey(3), SampleProgress()},
          ReclaimRequest{{"n1", "n2"}, 16, 60000, "urgent eval"},
          ReleaseRequest{7, {"n2"}},
          ListReclaimsRequest{7},
          ReclaimListReply{{SampleReclaim(7), SampleReclaim(8)}},
          PreemptNotice{SampleKey(0), 1'700'000'060'000, "reclaim 7", 10},
          ListAuditRequest{3'600'000, 50},
          AuditListReply{{AuditEntry{1'700'000'000'000, "infra", "reclaim", "reclaim 7: n2"},
                          AuditEntry{1'700'000'000'500, "acme", "reclaim_refused", "not an admin"}}},
          ListTenantsRequest{},
          TenantListReply{{TenantInfo{"acme", 8u, 4u, 2.5, Priority::kHigh, 10, 2, 3, 12, 0.75,
                                      1234.5, 9999.25, 4000.5, 12.25, 6},
                           TenantInfo{"globex", std::nullopt, std::nullopt, 1.0, Priority::kNormal,
                                      0, 0, 0, 0, 0, 0, 0}},
                          true, 16}};
}

inline Envelope WithBody(Body body, uint64_t request_id = 0x1122334455667788) {
  Envelope envelope;
  envelope.request_id = request_id;
  envelope.token = "acme-token";
  envelope.body = std::move(body);
  return envelope;
}

}  // namespace sublet::protocols::samples
