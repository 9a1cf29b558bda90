// GpuLedger: which GPUs the live ranks hold, node by node, and which jobs are
// live (have a rank that has not exited). The one answer to "is this GPU
// free" for the scheduler, reclaims and the views.
//
// The ledger is told about a job whenever its ranks may have changed
// (Update), and answers from what it was told: a GPU is held from the moment
// a rank is placed on it until that rank's exit is recorded, so no GPU is
// ever given to two ranks at once, even while an attempt is being stopped.
//
// Thread-compatible: owned by the event-loop thread, with the Cluster.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "coordinator/model.h"

namespace sublet::coordinator {

class GpuLedger {
 public:
  // Records the GPUs `job`'s unexited ranks hold now, replacing what the
  // ledger knew of it. Returns true when this ends the job's last live rank
  // (it was live before and is not now).
  bool Update(const Job& job);
  void Clear();

  const std::set<uint64_t>& live_jobs() const { return live_; }
  bool IsLive(uint64_t job_id) const { return live_.count(job_id) > 0; }
  // Live jobs with a rank on `node`, by id.
  std::vector<uint64_t> JobsOn(const std::string& node) const;
  // held[g] is true when GPU g of `node` is held; sized to at least `gpus`.
  std::vector<bool> Held(const std::string& node, uint32_t gpus) const;
  // GPUs among `node`'s first `gpus` that no live rank holds.
  std::vector<uint32_t> Free(const std::string& node, uint32_t gpus) const;

 private:
  void Forget(uint64_t job_id);

  std::set<uint64_t> live_;
  // node -> live job -> the GPUs its ranks hold there.
  std::map<std::string, std::map<uint64_t, std::vector<uint32_t>>> by_node_;
  // live job -> the nodes it holds GPUs on (to forget it in one step).
  std::map<uint64_t, std::set<std::string>> nodes_of_;
};

}  // namespace sublet::coordinator
