// The coordinator's view of jobs and nodes. The event loop owns these values;
// the store persists them; the scheduler reads a snapshot of them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "protocols/job_spec.h"
#include "protocols/messages.h"

namespace sublet::coordinator {

enum class JobState { kPending, kRunning, kPreempting, kSucceeded, kFailed, kCancelled };
std::string_view JobStateName(JobState state);
std::optional<JobState> JobStateFromName(std::string_view name);
inline bool IsFinal(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled;
}

// Exit code recorded for a rank whose node was lost or restarted under it.
inline constexpr int32_t kExitNodeLost = -1;
// Exit code meaning "checkpointed for preemption" (DESIGN.md).
inline constexpr int32_t kExitPreempted = 75;

struct RankRecord {
  uint32_t rank = 0;
  std::string node;
  std::string incarnation;  // of the worker the rank was given to
  uint32_t local_rank = 0;
  std::vector<uint32_t> gpus;
  bool exited = false;
  int32_t exit_code = 0;
  // Not persisted: refreshed by the worker's reports.
  protocols::Progress progress;
  std::string exit_message;  // the rank's last output line when it failed
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

  std::string IdText() const { return std::to_string(id); }
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

struct Node {
  std::string name;
  std::string state = "ready";  // ready, draining, reclaimed, lost
  std::vector<protocols::GpuInfo> gpus;
  std::string incarnation;
  std::string address;
  // Not persisted: refreshed by every report.
  std::string peer;  // ZeroMQ routing id of the worker's connection
  absl::Time last_seen = absl::InfinitePast();
  std::vector<uint32_t> free_ports;
};

}  // namespace sublet::coordinator
