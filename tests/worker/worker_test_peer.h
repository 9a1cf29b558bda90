// Test access to the steps Worker::Run is made of, so tests can drive them
// one at a time (a fake clock, no event loop). Not for production code.
#pragma once

#include <string>
#include <vector>

#include "worker/worker.h"

namespace sublet::worker {

class WorkerTestPeer {
 public:
  explicit WorkerTestPeer(Worker& worker) : worker_(worker) {}

  absl::Status Prepare() { return worker_.Prepare(); }
  void HandleSync(const protocols::WorkerSync& sync) { worker_.HandleSync(sync); }
  void HandleExits(const std::vector<ProcessExit>& exits) { worker_.HandleExits(exits); }
  void FireDueKills() { worker_.FireDueKills(); }
  void BeginShutdown() { worker_.BeginShutdown(); }
  protocols::WorkerReport BuildReport() const { return worker_.BuildReport(); }
  absl::StatusOr<protocols::LogsReply> ReadRankLog(
      const protocols::ReadRankLogRequest& request) const {
    return worker_.ReadRankLog(request);
  }

  const RankTable& ranks() const { return worker_.table_; }
  bool report_due() const { return worker_.report_due_; }
  std::string LogPath(const RankKey& key) const { return worker_.LogPath(key); }

 private:
  Worker& worker_;
};

}  // namespace sublet::worker
