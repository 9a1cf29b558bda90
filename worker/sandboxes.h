// The worker's job sandboxes (worker/job_sandbox.h): one per job attempt
// with ranks on this node, started when its first rank launches and
// destroyed as soon as none of its ranks lives, so that nothing a rank
// started outlives its attempt, and an attempt never overlaps the previous
// attempt of its job on this node.
//
// Identity is per tenant: a tenant numbered N by the coordinator runs as
// uid = gid = first_uid + N. Per tenant rather than per job, because a
// tenant's storage (<storage_root>/<tenant>, 0700) must be readable by all of
// its jobs (a job resumes from, or reads, what an earlier job wrote), while
// two jobs, even of one tenant, never see each other's processes (separate
// PID namespaces) nor memory (separate IPC namespaces and /dev/shm).
//
// Thread-safety: none; the worker's event-loop thread owns it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "protocols/messages.h"
#include "worker/job_cgroup.h"
#include "worker/job_sandbox.h"

namespace sublet::worker {

struct IsolationOptions {
  bool enabled = false;
  uid_t first_uid = 200000;    // tenant N runs as first_uid + N
  uint32_t uid_count = 100000;  // tenant numbers 1 .. uid_count-1
  std::vector<std::string> hidden;  // more host directories ranks must not see
  std::vector<std::string> shared;  // host directories every job sees (JobSandboxSpec)
  // Where the GPUs' device nodes are: <device_dir>/nvidia<i> for GPU i, and
  // nvidiactl, nvidia-uvm, nvidia-uvm-tools, nvidia-modeset for every job
  // with GPUs. Those that do not exist are skipped.
  std::string device_dir = "/dev";
  uint64_t tmp_bytes = uint64_t{4} << 30;  // per job and node
  uint64_t shm_bytes = uint64_t{8} << 30;
  // Per job and node, through its cgroup (worker/job_cgroup.h) when
  // `cgroups` is set: memory in proportion to the job's GPUs here, and
  // processes. 0: no limit of that kind.
  bool cgroups = false;
  uint64_t memory_per_gpu = 0;
  uint64_t job_pids = 4096;
};

class Sandboxes {
 public:
  // `work_dir`: the worker's (absolute); `control_socket`: the path of its
  // control endpoint's socket.
  // `node`: this node's name, which prefixes its cgroups' names (several
  // workers may share a host's cgroup tree).
  Sandboxes(IsolationOptions options, std::string node, std::string work_dir,
            std::string control_socket);

  // Removes what a previous worker of this node, killed, left behind of its
  // cgroups. Returns how many.
  int RemoveLeftoverCgroups() const;

  bool enabled() const { return options_.enabled; }
  bool cgroups() const { return options_.cgroups; }

  // The sandbox of `launch`'s attempt, started if it is the first rank of
  // that attempt here: older attempts' sandboxes of the job are destroyed
  // first. `gpus`: every GPU the attempt has on this node. Errors:
  // InvalidArgument (no tenant, a tenant number outside the uid range, a
  // checkpoint directory that is not <storage_root>/<tenant>/<job>/
  // checkpoints), and what JobSandbox::Start returns.
  absl::StatusOr<const JobSandbox*> For(const protocols::RankLaunch& launch,
                                        const std::vector<uint32_t>& gpus);

  // The ranks' working directory for `key`'s attempt (made by For, owned by
  // the tenant's uid).
  std::string RankDir(const protocols::RankKey& key) const;

  // Sends a preemption notice's signal to every process of the attempt on
  // this node, once per attempt. False when it was sent before or there is no
  // sandbox.
  bool NotifyOnce(const protocols::RankKey& key, int signal);

  // Destroys the sandbox of every attempt for which `live(job, attempt)` is
  // false; returns their labels.
  template <typename IsLive>
  std::vector<std::string> Collect(IsLive live) {
    std::vector<std::string> gone;
    for (auto it = sandboxes_.begin(); it != sandboxes_.end();) {
      if (live(it->first.first, it->first.second)) {
        ++it;
        continue;
      }
      gone.push_back(it->second.sandbox->label());
      Remove(it->second);
      it = sandboxes_.erase(it);
    }
    return gone;
  }

  size_t size() const { return sandboxes_.size(); }

 private:
  struct Entry {
    std::unique_ptr<JobCgroup> cgroup;  // outlives the sandbox: removed after it
    std::unique_ptr<JobSandbox> sandbox;
    std::string pid_file;
    bool noticed = false;
  };
  using AttemptKey = std::pair<uint64_t, uint32_t>;  // job, attempt

  void Remove(Entry& entry);
  std::vector<DeviceNode> Devices(const std::vector<uint32_t>& gpus) const;

  std::string CgroupPrefix() const;

  IsolationOptions options_;
  std::string node_;
  std::string work_dir_;
  std::string control_socket_;
  std::map<AttemptKey, Entry> sandboxes_;
};

}  // namespace sublet::worker
