// The coordinator's view of jobs and nodes. The event loop owns these values;
// the store persists them; the scheduler reads a snapshot of them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "common/exit_codes.h"
#include "common/status.h"
#include "protocols/job_spec.h"
#include "protocols/messages.h"

namespace sublet::coordinator {

// Each state has one name, the one users see (DESIGN.md) and the store
// keeps; FromName is nullopt for any other text, so a damaged row is caught
// on load.
enum class JobState { kPending, kRunning, kPreempting, kSucceeded, kFailed, kCancelled };
std::string_view JobStateName(JobState state);
std::optional<JobState> JobStateFromName(std::string_view name);
inline bool IsFinal(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled;
}

// ready: takes work; draining: a reclaim holds it, nothing new lands;
// reclaimed: handed over to the internal team; lost: its worker went silent.
enum class NodeState { kReady, kDraining, kReclaimed, kLost };
std::string_view NodeStateName(NodeState state);
std::optional<NodeState> NodeStateFromName(std::string_view name);

// draining -> reclaimed (every node handed over) -> released.
enum class ReclaimState { kDraining, kReclaimed, kReleased };
std::string_view ReclaimStateName(ReclaimState state);
std::optional<ReclaimState> ReclaimStateFromName(std::string_view name);

// What became of one job a reclaim preempted: still preempting; acknowledged
// (every rank checkpointed and exited 75); killed at the deadline; ended
// otherwise (it finished, or exited without a checkpoint).
enum class VictimState { kPreempting, kAcknowledged, kKilled, kEnded };
std::string_view VictimStateName(VictimState state);
std::optional<VictimState> VictimStateFromName(std::string_view name);

struct RankRecord {
  uint32_t rank = 0;
  std::string node;
  std::string incarnation;  // of the worker the rank was given to
  uint32_t local_rank = 0;
  std::vector<uint32_t> gpus;
  bool exited = false;
  int32_t exit_code = 0;
  // Not persisted: refreshed by the worker's reports.
  protocols::Progress progress;  // every report of the attempt merged (protocols/progress.h)
  // When the rank last reported a step beyond the one before: the end of
  // the work it has done (accounting.h).
  absl::Time step_time = absl::InfinitePast();
  std::string exit_message;  // the rank's last output line when it failed

  // A rank holds one GPU, or under torchrun its node's (at least one).
  size_t GpuCount() const { return std::max<size_t>(1, gpus.size()); }
};

struct Job {
  uint64_t id = 0;
  std::string tenant;
  protocols::JobSpec spec;
  JobState state = JobState::kPending;
  std::string reason;
  uint32_t restarts = 0;
  uint32_t preemptions = 0;
  uint32_t attempt = 0;
  int64_t last_checkpoint_step = -1;
  // An array task (spec.array): the array's id, which is its first task's,
  // and this task's index. array_id 0: not an array task. Set at submit.
  uint64_t array_id = 0;
  uint32_t array_index = 0;
  // Not persisted: derived from spec.array (SetArrayShape).
  uint32_t array_size = 0;         // tasks in the array
  uint32_t array_max_running = 0;  // 0: no limit
  absl::Time submit_time = absl::InfinitePast();
  absl::Time start_time = absl::InfinitePast();  // of the current attempt
  absl::Time end_time = absl::InfinitePast();
  // True while the ranks of the current attempt are being stopped; the job
  // starts no new attempt until every one of them has exited.
  bool stopping = false;
  std::string master_addr;
  uint32_t master_port = 0;
  uint32_t rendezvous_port = 0;
  std::vector<RankRecord> ranks;  // current attempt, by rank

  // Reclaim: while kPreempting, the reclaim that asked, and its deadline.
  uint64_t reclaim_id = 0;
  absl::Time preempt_deadline = absl::InfinitePast();
  std::string preempt_why;   // why the last reclaim (or fairness preemption) chose this job
  // Fairness preemption (fairness.h): while kPreempting with no reclaim, the
  // pending job it gives its GPUs back for.
  uint64_t fairness_for = 0;
  int64_t resume_step = -1;  // what the next attempt resumes from (-1: start)
  // A restarted job is not placed before this (restart backoff).
  absl::Time not_before = absl::InfinitePast();
  // The newest checkpoint rank 0 reported: when, how big, how long it took to
  // persist (for lost-work accounting and save-time estimates).
  absl::Time last_checkpoint_time = absl::InfinitePast();
  int64_t checkpoint_bytes = 0;
  double checkpoint_persist_s = 0;
  // Accounting over ended attempts (the running one is added when viewed).
  double gpu_seconds = 0;
  double gpu_seconds_lost = 0;  // to preemption: work after the resume checkpoint
  // Of the current attempt's GPUs, how many were borrowed beyond the
  // tenant's quota when it started; and the borrowed part of gpu_seconds.
  uint32_t attempt_borrowed_gpus = 0;
  double gpu_seconds_borrowed = 0;
  bool deadline_noted = false;  // not persisted: the deadline event was written

  // The GPUs the attempt holds.
  size_t Gpus() const {
    size_t n = 0;
    for (const RankRecord& r : ranks) n += r.GpuCount();
    return n;
  }
  bool HasLiveRanks() const {
    for (const RankRecord& r : ranks) {
      if (!r.exited) return true;
    }
    return false;
  }
  // Ranks the workers should be running: the attempt is live and not stopping.
  bool WantsRanks() const {
    return (state == JobState::kRunning || state == JobState::kPreempting) && !stopping;
  }
};

// Fills the job's array_size and array_max_running from spec.array;
// InvalidArgument when it does not parse.
absl::Status SetArrayShape(Job& job);

struct Node {
  std::string name;
  NodeState state = NodeState::kReady;
  std::vector<protocols::GpuInfo> gpus;
  std::string incarnation;
  std::string address;
  std::string instance;  // the worker instance that registered the node
  // Not persisted: refreshed by every report.
  std::string peer;  // ZeroMQ routing id of the worker's connection
  absl::Time last_seen = absl::InfinitePast();
  std::vector<uint32_t> free_ports;
  uint64_t reclaim_id = 0;  // the reclaim draining or holding the node; 0: none
  std::string isolation;    // from the last report: "sandbox" or "none"
};

// One job a reclaim preempts.
struct ReclaimVictim {
  uint64_t job_id = 0;
  std::string tenant;
  VictimState state = VictimState::kPreempting;
  std::string why;
  int64_t checkpoint_step = -1;
  double estimated_save_s = -1;
};

// An admin's reclaim, durable from the moment it is accepted (DESIGN.md
// "Reclaim transaction").
struct Reclaim {
  uint64_t id = 0;
  std::string who;
  std::string reason;
  ReclaimState state = ReclaimState::kDraining;
  std::vector<std::string> requested_nodes;
  uint32_t requested_gpus = 0;
  absl::Time created = absl::InfinitePast();
  absl::Time deadline = absl::InfinitePast();
  absl::Time reclaimed_time = absl::InfinitePast();
  absl::Time released_time = absl::InfinitePast();
  std::vector<std::string> nodes;  // the nodes taken
  std::vector<ReclaimVictim> victims;
  std::vector<std::string> warnings;
};

}  // namespace sublet::coordinator
