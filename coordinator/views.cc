#include "coordinator/views.h"

#include <algorithm>

#include "coordinator/accounting.h"

namespace sublet::coordinator {
namespace {

int64_t Ms(absl::Time t) { return t == absl::InfinitePast() ? 0 : absl::ToUnixMillis(t); }

}  // namespace

absl::StatusOr<protocols::JobInfo> JobView(const Job& job, Store* events_from, absl::Time now) {
  protocols::JobInfo info;
  info.id = job.id;
  info.name = job.spec.name;
  info.tenant = job.tenant;
  info.state = std::string(JobStateName(job.state));
  info.reason = job.reason;
  info.restarts = job.restarts;
  info.preemptions = job.preemptions;
  info.attempt = job.attempt;
  info.last_checkpoint_step = job.last_checkpoint_step;
  info.submit_time_unix_ms = Ms(job.submit_time);
  info.start_time_unix_ms = Ms(job.start_time);
  info.end_time_unix_ms = Ms(job.end_time);
  info.spec = job.spec;
  if (!job.ranks.empty()) info.progress = job.ranks[0].progress;
  info.gpu_seconds = GpuSecondsUsed(job, now);
  info.gpu_seconds_lost = job.gpu_seconds_lost;
  info.reclaim_id = job.reclaim_id;
  info.preempt_why = job.preempt_why;
  info.resume_step = job.resume_step;
  info.array_id = job.array_id;
  info.array_index = job.array_index;
  info.array_size = job.array_size;
  std::vector<RankRecord> ranks = job.ranks;
  if (ranks.empty() && job.attempt > 0 && events_from) {
    // Ended jobs keep their placement on disk only.
    SUBLET_ASSIGN_OR_RETURN(ranks, events_from->Ranks(job.id, job.attempt));
  }
  for (const RankRecord& r : ranks) {
    if (info.nodes.empty() || info.nodes.back() != r.node) info.nodes.push_back(r.node);
  }
  if (events_from) {
    for (const RankRecord& r : ranks) {
      info.ranks.push_back({r.rank, r.node, r.local_rank, r.gpus, r.exited ? "exited" : "running",
                            r.exit_code});
    }
    SUBLET_ASSIGN_OR_RETURN(info.events, events_from->Events(job.id));
  }
  return info;
}

protocols::NodeInfo NodeView(const Cluster& cluster, const Node& node) {
  protocols::NodeInfo info;
  info.name = node.name;
  info.state = std::string(NodeStateName(node.state));
  info.gpus = static_cast<uint32_t>(node.gpus.size());
  info.gpus_free = cluster.FreeGpus(node);
  for (uint64_t id : cluster.JobsOnNode(node.name)) info.jobs.push_back(id);
  info.address = node.address;
  info.last_heartbeat_unix_ms = Ms(node.last_seen);
  info.reclaim_id = node.reclaim_id;
  info.isolation = node.isolation;
  return info;
}

protocols::ReclaimInfo ReclaimView(const Cluster& cluster, const Reclaim& r) {
  protocols::ReclaimInfo info;
  info.id = r.id;
  info.who = r.who;
  info.reason = r.reason;
  info.state = std::string(ReclaimStateName(r.state));
  info.requested_nodes = r.requested_nodes;
  info.requested_gpus = r.requested_gpus;
  info.deadline_unix_ms = Ms(r.deadline);
  info.created_unix_ms = Ms(r.created);
  info.reclaimed_unix_ms = Ms(r.reclaimed_time);
  info.released_unix_ms = Ms(r.released_time);
  for (const std::string& name : r.nodes) {
    const Node* node = cluster.FindNode(name);
    std::string state = !node || node->reclaim_id != r.id ? std::string(ReclaimStateName(ReclaimState::kReleased))
                                                          : std::string(NodeStateName(node->state));
    info.nodes.push_back({name, state});
  }
  for (const ReclaimVictim& v : r.victims) {
    info.jobs.push_back({v.job_id, v.tenant, std::string(VictimStateName(v.state)), v.why,
                         v.checkpoint_step, v.estimated_save_s});
  }
  info.warnings = r.warnings;
  return info;
}

}  // namespace sublet::coordinator
