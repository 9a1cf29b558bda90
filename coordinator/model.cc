#include "coordinator/model.h"

#include <array>
#include <utility>

namespace sublet::coordinator {
namespace {

// One table per enum: its values in order, each with its one name.
template <typename E, size_t N>
using Names = std::array<std::pair<E, std::string_view>, N>;

constexpr Names<JobState, 6> kJobStates{{{JobState::kPending, "pending"},
                                         {JobState::kRunning, "running"},
                                         {JobState::kPreempting, "preempting"},
                                         {JobState::kSucceeded, "succeeded"},
                                         {JobState::kFailed, "failed"},
                                         {JobState::kCancelled, "cancelled"}}};
constexpr Names<NodeState, 4> kNodeStates{{{NodeState::kReady, "ready"},
                                           {NodeState::kDraining, "draining"},
                                           {NodeState::kReclaimed, "reclaimed"},
                                           {NodeState::kLost, "lost"}}};
constexpr Names<ReclaimState, 3> kReclaimStates{{{ReclaimState::kDraining, "draining"},
                                                 {ReclaimState::kReclaimed, "reclaimed"},
                                                 {ReclaimState::kReleased, "released"}}};
constexpr Names<VictimState, 4> kVictimStates{{{VictimState::kPreempting, "preempting"},
                                               {VictimState::kAcknowledged, "acknowledged"},
                                               {VictimState::kKilled, "killed"},
                                               {VictimState::kEnded, "ended"}}};

template <typename E, size_t N>
std::string_view NameOf(const Names<E, N>& names, E value) {
  for (const auto& [v, name] : names) {
    if (v == value) return name;
  }
  return "unknown";
}

template <typename E, size_t N>
std::optional<E> FromName(const Names<E, N>& names, std::string_view name) {
  for (const auto& [v, n] : names) {
    if (n == name) return v;
  }
  return std::nullopt;
}

}  // namespace

std::string_view JobStateName(JobState s) { return NameOf(kJobStates, s); }
std::optional<JobState> JobStateFromName(std::string_view n) { return FromName(kJobStates, n); }
std::string_view NodeStateName(NodeState s) { return NameOf(kNodeStates, s); }
std::optional<NodeState> NodeStateFromName(std::string_view n) { return FromName(kNodeStates, n); }
std::string_view ReclaimStateName(ReclaimState s) { return NameOf(kReclaimStates, s); }
std::optional<ReclaimState> ReclaimStateFromName(std::string_view n) {
  return FromName(kReclaimStates, n);
}
std::string_view VictimStateName(VictimState s) { return NameOf(kVictimStates, s); }
std::optional<VictimState> VictimStateFromName(std::string_view n) {
  return FromName(kVictimStates, n);
}

absl::Status SetArrayShape(Job& job) {
  job.array_size = 0;
  job.array_max_running = 0;
  if (job.spec.array.empty()) return absl::OkStatus();
  SUBLET_ASSIGN_OR_RETURN(protocols::ArraySpec array, protocols::ParseArraySpec(job.spec.array, {}));
  job.array_size = static_cast<uint32_t>(array.indices.size());
  job.array_max_running = array.max_running;
  return absl::OkStatus();
}

}  // namespace sublet::coordinator
