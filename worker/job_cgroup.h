// One job attempt's cgroup on one node: a memory and a process-count limit
// for every process of the attempt, wherever the node's cgroup tree allows
// it. cgroup v2 (a unified hierarchy with the memory and pids controllers
// enabled for <root>/sublet) and v1 (memory and pids hierarchies) are both
// used; on a node with neither, Probe says why and jobs run without limits.
//
// Ranks join it themselves, from their shim, before they fork the rank
// (worker/confinement.h): `procs_fds` are open cgroup.procs files, and
// writing "0" to one moves the writer (async-signal-safe).
//
// Thread-safety: none; the worker's event-loop thread owns them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/internal/unique_fd.h"

namespace sublet::worker {

struct CgroupLimits {
  uint64_t memory_bytes = 0;  // 0: no memory limit
  uint64_t pids = 0;          // 0: no process-count limit
};

class JobCgroup {
 public:
  // OK when this node can limit jobs; otherwise FailedPrecondition saying
  // what is missing (no cgroup hierarchy with memory and pids, or one this
  // process cannot write).
  static absl::Status Probe(const std::string& cgroup_root = "/sys/fs/cgroup");

  // Makes <root>/.../sublet/<name> with `limits`. Errors: what Probe says, or
  // a write that failed (Internal, naming the file).
  static absl::StatusOr<std::unique_ptr<JobCgroup>> Create(
      const std::string& name, const CgroupLimits& limits,
      const std::string& cgroup_root = "/sys/fs/cgroup");

  // Removes every empty cgroup under .../sublet/ whose name starts with
  // `prefix` (what a worker killed before it could clean up left behind);
  // returns how many.
  static int RemoveLeftovers(const std::string& prefix,
                             const std::string& cgroup_root = "/sys/fs/cgroup");

  // Removes the cgroup directories (they must hold no process by then).
  ~JobCgroup();
  JobCgroup(const JobCgroup&) = delete;
  JobCgroup& operator=(const JobCgroup&) = delete;

  // Open cgroup.procs files (write "0" to join); valid while this lives.
  const std::vector<int>& procs_fds() const { return procs_fds_; }
  // Moves `pid` into the cgroup.
  absl::Status Add(int pid) const;
  const std::vector<std::string>& dirs() const { return dirs_; }

 private:
  JobCgroup() = default;

  std::vector<std::string> dirs_;
  std::vector<internal::UniqueFd> procs_;
  std::vector<int> procs_fds_;
};

}  // namespace sublet::worker
