// The worker's rank bookkeeping, free of processes, sockets and clocks so that
// every decision it makes is unit-tested on plain values.
//
// A rank (one RankKey) moves through these states in one worker incarnation:
//
//   (desired, never launched) --launch--> kRunning --stop--> kStopping
//        kStopping --grace passed--> kKilled          (SIGKILL sent)
//        kRunning (noticed) --notice deadline passed--> kKilled
// A preemption notice leaves a rank kRunning (it is saving a checkpoint);
// it only sets the SIGKILL deadline.
//        kRunning | kStopping | kKilled --exit--> kExited
//        kExited --acked by the coordinator--> forgotten
//
// A key that was launched once in this incarnation is never launched again,
// even after it exited and even if the coordinator still lists it: an exit is
// final, and only the coordinator decides on a new attempt (a new key).
//
// Thread-safety: none; the worker's event-loop thread owns the table.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "protocols/messages.h"

namespace sublet::worker {

using protocols::RankKey;

enum class RankState { kRunning, kStopping, kKilled, kExited };

struct RankRecord {
  RankKey key;
  int pid = 0;  // 0 when the launch failed before a process existed
  RankState state = RankState::kRunning;
  int32_t exit_code = 0;                      // valid in kExited
  // SIGKILL deadline: set by a stop request or a preemption notice.
  absl::Time kill_at = absl::InfiniteFuture();
  std::string control_token;    // the rank's SUBLET_CONTROL_TOKEN
  protocols::Progress progress;  // its latest report on the control endpoint
  std::string exit_message;      // after a failed exit: its last output line

  bool live() const { return state != RankState::kExited; }
  // Stopping, or running after a notice: SIGKILL is due at kill_at.
  bool kill_armed() const {
    return (state == RankState::kRunning || state == RankState::kStopping) &&
           kill_at != absl::InfiniteFuture();
  }
};

// What one WorkerSync asks of the worker, decided by RankTable::ApplySync.
struct SyncPlan {
  std::vector<protocols::RankLaunch> launch;  // start these now
  std::vector<RankKey> stop;                  // SIGTERM these now (they run)
  std::vector<RankKey> forgotten;             // acked exits dropped from reports
};

class RankTable {
 public:
  explicit RankTable(std::string incarnation) : incarnation_(std::move(incarnation)) {}

  const std::string& incarnation() const { return incarnation_; }

  // Decides what `sync` asks for and records the decisions that need no
  // process: the acked exits are forgotten, every key in `launch` counts as
  // launched from now on, and launch history is dropped for keys that are
  // neither desired nor live (so it stays bounded). Returns nullopt, changing
  // nothing, when the sync is addressed to another incarnation.
  std::optional<SyncPlan> ApplySync(const protocols::WorkerSync& sync);

  // Results of the launches ApplySync asked for.
  void RecordLaunch(const RankKey& key, int pid, std::string control_token = "");
  void RecordLaunchFailure(const RankKey& key, int32_t exit_code);

  // A running rank was sent SIGTERM; it gets SIGKILL at `kill_at`. Returns
  // false (changing nothing) unless the rank is kRunning.
  bool RecordStopRequested(const RankKey& key, absl::Time kill_at);

  // A preemption notice for `key` with its (finite) SIGKILL deadline. The
  // first time for a running rank it returns the rank (deliver the notice
  // then); otherwise null, and a repeated notice only moves the deadline
  // earlier.
  const RankRecord* RecordNotice(const RankKey& key, absl::Time deadline);

  // The stopping or noticed ranks whose deadline is at or before `now`; they
  // become kKilled, so each is returned once.
  std::vector<RankRecord> TakeDueKills(absl::Time now);

  // The process `pid` exited. Returns the rank it was, or nullopt for a pid
  // that is no live rank of this table.
  std::optional<RankKey> RecordExit(int pid, int32_t exit_code);

  // A progress report from the control endpoint. Accepted only for a rank in
  // the table (live, or exited and not yet acked: a rank's last report may
  // arrive after its exit) and with that rank's own control token.
  bool RecordProgress(const RankKey& key, const std::string& token,
                      const protocols::Progress& progress);
  // Why an exited rank failed, for the coordinator's events.
  void RecordExitMessage(const RankKey& key, std::string message);

  // For reports: every live rank (exited=false) and every unacked exit.
  std::vector<protocols::RankStatus> Statuses() const;

  const RankRecord* Find(const RankKey& key) const;
  bool IsLive(const RankKey& key) const;
  std::vector<RankRecord> LiveRanks() const;
  size_t live_count() const;
  // The earliest SIGKILL deadline of a stopping rank, if any.
  std::optional<absl::Time> NextKillDeadline() const;
  // How many keys the launch history holds (tests check it stays bounded).
  size_t launched_count() const { return launched_.size(); }

 private:
  std::string incarnation_;
  std::map<RankKey, RankRecord> ranks_;  // live ranks and unacked exits
  std::set<RankKey> launched_;           // every key launched in this incarnation
};

}  // namespace sublet::worker
