// How the ranks of one job talk while they save or load a checkpoint. The
// checkpoint library never opens a transport itself: the caller hands it a
// Group (over the job's collectives, its rendezvous store, or threads in a
// test). Messages are small (a few bytes per piece).
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"

namespace sublet::checkpoint {

class Group {
 public:
  virtual ~Group() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Collective: every rank calls it with its bytes; each gets all ranks'
  // bytes in rank order. A failure (e.g. a peer is gone) is returned to the
  // caller, which then abandons the save or load. Used by one thread at a
  // time per rank (the checkpoint writer thread while an async save runs).
  virtual absl::StatusOr<std::vector<std::string>> AllGather(const std::string& mine) = 0;
};

// A group of one: AllGather returns {mine}.
class SoloGroup final : public Group {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  absl::StatusOr<std::vector<std::string>> AllGather(const std::string& mine) override {
    return std::vector<std::string>{mine};
  }
};

// `size` ranks that are threads of one process (tests, benchmarks, a
// single-node job). Member(r) is the Group that rank r's thread uses.
class InProcessGroups {
 public:
  explicit InProcessGroups(int size);
  Group& Member(int rank) { return *members_[rank]; }

 private:
  class MemberGroup;
  absl::StatusOr<std::vector<std::string>> Gather(int rank, const std::string& mine);

  const int size_;
  std::mutex mutex_;
  std::condition_variable changed_;
  uint64_t generation_ = 0;               // guarded by mutex_
  int arrived_ = 0;                       // guarded by mutex_
  std::vector<std::string> slots_;        // guarded by mutex_
  std::vector<std::string> result_;       // guarded by mutex_
  std::vector<std::unique_ptr<Group>> members_;
};

}  // namespace sublet::checkpoint
