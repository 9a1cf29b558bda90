#include "coordinator/views.h"

namespace sublet::coordinator {
namespace {

int64_t Ms(absl::Time t) { return t == absl::InfinitePast() ? 0 : absl::ToUnixMillis(t); }

}  // namespace

absl::StatusOr<protocols::JobInfo> JobView(const Job& job, Store* events_from) {
  protocols::JobInfo info;
  info.id = job.IdText();
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
  info.state = node.state;
  info.gpus = static_cast<uint32_t>(node.gpus.size());
  info.gpus_free = cluster.FreeGpus(node);
  info.jobs = cluster.JobsOnNode(node.name);
  info.address = node.address;
  info.last_heartbeat_unix_ms = Ms(node.last_seen);
  return info;
}

}  // namespace sublet::coordinator
