#include "worker/rank_table.h"

#include <algorithm>

#include "protocols/progress.h"

namespace sublet::worker {

std::optional<SyncPlan> RankTable::ApplySync(const protocols::WorkerSync& sync) {
  if (sync.incarnation != incarnation_) return std::nullopt;
  SyncPlan plan;

  std::set<RankKey> desired;
  for (const protocols::RankLaunch& launch : sync.desired) {
    desired.insert(launch.key);
    if (launched_.contains(launch.key) || ranks_.contains(launch.key)) continue;
    launched_.insert(launch.key);  // also dedupes a key listed twice
    plan.launch.push_back(launch);
  }

  for (const auto& [key, record] : ranks_) {
    if (record.state == RankState::kRunning && !desired.contains(key)) plan.stop.push_back(key);
  }

  for (const RankKey& key : sync.acked_exits) {
    auto it = ranks_.find(key);
    if (it == ranks_.end() || it->second.live()) continue;
    ranks_.erase(it);
    plan.forgotten.push_back(key);
  }

  std::erase_if(launched_, [&](const RankKey& key) {
    return !desired.contains(key) && !IsLive(key);
  });
  return plan;
}

void RankTable::RecordLaunch(const RankKey& key, int pid, std::string control_token) {
  launched_.insert(key);
  RankRecord& record = ranks_[key] = RankRecord();
  record.key = key;
  record.pid = pid;
  record.control_token = std::move(control_token);
}

bool RankTable::RecordProgress(const RankKey& key, const std::string& token,
                               const protocols::Progress& progress) {
  auto it = ranks_.find(key);
  // An exited rank not yet acked still takes reports: its last one (the
  // checkpoint it committed before exiting kExitPreempted) may arrive after
  // its exit.
  if (it == ranks_.end() || it->second.control_token.empty() ||
      it->second.control_token != token) {
    return false;
  }
  protocols::MergeProgress(it->second.progress, progress);
  return true;
}

void RankTable::RecordExitMessage(const RankKey& key, std::string message) {
  auto it = ranks_.find(key);
  if (it != ranks_.end()) it->second.exit_message = std::move(message);
}

void RankTable::RecordLaunchFailure(const RankKey& key, int32_t exit_code) {
  launched_.insert(key);
  RankRecord& record = ranks_[key] = RankRecord();
  record.key = key;
  record.state = RankState::kExited;
  record.exit_code = exit_code;
}

bool RankTable::RecordStopRequested(const RankKey& key, absl::Time kill_at) {
  auto it = ranks_.find(key);
  if (it == ranks_.end() || it->second.state != RankState::kRunning) return false;
  it->second.state = RankState::kStopping;
  it->second.kill_at = std::min(it->second.kill_at, kill_at);
  return true;
}

const RankRecord* RankTable::RecordNotice(const RankKey& key, absl::Time deadline) {
  auto it = ranks_.find(key);
  if (it == ranks_.end() || !it->second.live()) return nullptr;
  RankRecord& record = it->second;
  const bool first = record.state == RankState::kRunning && !record.kill_armed();
  record.kill_at = std::min(record.kill_at, deadline);
  return first ? &record : nullptr;
}

std::vector<RankRecord> RankTable::TakeDueKills(absl::Time now) {
  std::vector<RankRecord> due;
  for (auto& [key, record] : ranks_) {
    if (!record.kill_armed() || record.kill_at > now) continue;
    record.state = RankState::kKilled;
    due.push_back(record);
  }
  return due;
}

std::optional<RankKey> RankTable::RecordExit(int pid, int32_t exit_code) {
  for (auto& [key, record] : ranks_) {
    if (record.pid != pid || !record.live()) continue;
    record.state = RankState::kExited;
    record.exit_code = exit_code;
    record.kill_at = absl::InfiniteFuture();
    return key;
  }
  return std::nullopt;
}

std::vector<protocols::RankStatus> RankTable::Statuses() const {
  std::vector<protocols::RankStatus> statuses;
  statuses.reserve(ranks_.size());
  for (const auto& [key, record] : ranks_) {
    statuses.push_back(protocols::RankStatus{.key = key,
                                             .exited = !record.live(),
                                             .exit_code = record.live() ? 0 : record.exit_code,
                                             .progress = record.progress,
                                             .message = record.exit_message});
  }
  return statuses;
}

const RankRecord* RankTable::Find(const RankKey& key) const {
  auto it = ranks_.find(key);
  return it == ranks_.end() ? nullptr : &it->second;
}

bool RankTable::IsLive(const RankKey& key) const {
  const RankRecord* record = Find(key);
  return record != nullptr && record->live();
}

std::vector<RankRecord> RankTable::LiveRanks() const {
  std::vector<RankRecord> live;
  for (const auto& [key, record] : ranks_) {
    if (record.live()) live.push_back(record);
  }
  return live;
}

size_t RankTable::live_count() const {
  return std::count_if(ranks_.begin(), ranks_.end(),
                       [](const auto& entry) { return entry.second.live(); });
}

std::optional<absl::Time> RankTable::NextKillDeadline() const {
  std::optional<absl::Time> next;
  for (const auto& [key, record] : ranks_) {
    if (!record.kill_armed()) continue;
    if (!next || record.kill_at < *next) next = record.kill_at;
  }
  return next;
}

}  // namespace sublet::worker
