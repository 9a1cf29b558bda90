#include "worker/sandboxes.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "common/log.h"
#include "fmt/format.h"
#include "worker/pid_file.h"

namespace sublet::worker {
namespace fs = std::filesystem;

Sandboxes::Sandboxes(IsolationOptions options, std::string node, std::string work_dir,
                     std::string control_socket)
    : options_(std::move(options)),
      node_(std::move(node)),
      work_dir_(std::move(work_dir)),
      control_socket_(std::move(control_socket)) {}

// "<node>.": a node name is not always a safe path component; then its hex.
std::string Sandboxes::CgroupPrefix() const {
  const bool safe = !node_.empty() && node_.size() <= 64 &&
                    node_.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                            "0123456789-_") == std::string::npos;
  if (safe) return node_ + ".";
  std::string hex;
  for (unsigned char c : node_.substr(0, 32)) hex += fmt::format("{:02x}", c);
  return hex + ".";
}

int Sandboxes::RemoveLeftoverCgroups() const {
  return options_.cgroups ? JobCgroup::RemoveLeftovers(CgroupPrefix()) : 0;
}

std::string Sandboxes::RankDir(const protocols::RankKey& key) const {
  return fmt::format("{}/jobs/{}/attempt-{}/work", work_dir_, key.job_id, key.attempt);
}

std::vector<DeviceNode> Sandboxes::Devices(const std::vector<uint32_t>& gpus) const {
  std::vector<DeviceNode> devices;
  auto add = [&](const std::string& name) {
    const std::string path = fmt::format("{}/{}", options_.device_dir, name);
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode)) devices.push_back({path, name});
  };
  for (uint32_t gpu : gpus) add(fmt::format("nvidia{}", gpu));
  if (!gpus.empty()) {
    for (const char* name : {"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"}) {
      add(name);
    }
  }
  return devices;
}

absl::StatusOr<const JobSandbox*> Sandboxes::For(const protocols::RankLaunch& launch,
                                                 const std::vector<uint32_t>& gpus) {
  const protocols::RankKey& key = launch.key;
  const AttemptKey attempt{key.job_id, key.attempt};
  if (auto it = sandboxes_.find(attempt); it != sandboxes_.end()) return it->second.sandbox.get();
  if (launch.tenant.empty()) return absl::InvalidArgumentError("the launch names no tenant");
  if (launch.tenant_number == 0 || launch.tenant_number >= options_.uid_count) {
    return absl::InvalidArgumentError(
        fmt::format("tenant {} has number {}, outside this node's uid range of {} uids from {}",
                    launch.tenant, launch.tenant_number, options_.uid_count, options_.first_uid));
  }
  const std::string expected_checkpoints =
      fmt::format("{}/{}/{}/checkpoints", launch.storage_root, launch.tenant, key.job_id);
  for (const protocols::KeyValue& entry : launch.env) {
    if (entry.key == "SUBLET_CHECKPOINT_DIR" && entry.value != expected_checkpoints) {
      return absl::InvalidArgumentError(fmt::format(
          "SUBLET_CHECKPOINT_DIR {} is not the job's storage {}", entry.value,
          expected_checkpoints));
    }
  }
  // An older attempt of this job must be gone, every process of it, first.
  for (auto it = sandboxes_.begin(); it != sandboxes_.end();) {
    if (it->first.first == key.job_id) {
      Log(LogLevel::kWarn, "sandbox_replaced",
          {{"job", key.job_id}, {"attempt", it->first.second}, {"by", key.attempt}});
      Remove(it->second);
      it = sandboxes_.erase(it);
    } else {
      ++it;
    }
  }
  const uid_t uid = options_.first_uid + launch.tenant_number;
  const std::string rank_dir = RankDir(key);
  std::error_code error;
  fs::create_directories(fs::path(rank_dir).parent_path(), error);
  if (error) return absl::InternalError(fmt::format("create {}: {}", rank_dir, error.message()));
  if (mkdir(rank_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError(fmt::format("create {}: {}", rank_dir, strerror(errno)));
  }
  if (chown(rank_dir.c_str(), uid, uid) != 0) {
    return absl::InternalError(fmt::format("chown {}: {}", rank_dir, strerror(errno)));
  }
  std::unique_ptr<JobCgroup> cgroup;
  if (options_.cgroups) {
    SUBLET_ASSIGN_OR_RETURN(
        cgroup, JobCgroup::Create(fmt::format("{}job-{}-attempt-{}", CgroupPrefix(), key.job_id,
                                              key.attempt),
                                  {.memory_bytes = options_.memory_per_gpu * gpus.size(),
                                   .pids = options_.job_pids}));
  }
  JobSandboxSpec spec{
      .label = fmt::format("job {} attempt {}", key.job_id, key.attempt),
      .uid = uid,
      .gid = uid,
      .storage_root = launch.storage_root,
      .tenant = launch.tenant,
      .job = std::to_string(key.job_id),
      .work_root = work_dir_,
      .rank_dir = rank_dir,
      .control_socket = control_socket_,
      .hidden = options_.hidden,
      .shared = options_.shared,
      .devices = Devices(gpus),
      .tmp_bytes = options_.tmp_bytes,
      .shm_bytes = options_.shm_bytes,
      .cgroup_procs_fds = cgroup ? cgroup->procs_fds() : std::vector<int>{},
  };
  SUBLET_ASSIGN_OR_RETURN(std::unique_ptr<JobSandbox> sandbox, JobSandbox::Start(spec));
  Entry entry{.cgroup = std::move(cgroup),
              .sandbox = std::move(sandbox),
              .pid_file = fmt::format("{}/ranks/sandbox.{}.{}.pid", work_dir_, key.job_id,
                                      key.attempt)};
  // A worker that dies takes its sandboxes along (the holder's parent-death
  // signal); the pid file lets the next one make sure.
  if (absl::Status written = WritePidFile(entry.pid_file, entry.sandbox->holder_pid());
      !written.ok()) {
    Log(LogLevel::kWarn, "sandbox_pid_file_failed",
        {{"job", key.job_id}, {"error", written.ToString()}});
  }
  Log(LogLevel::kInfo, "sandbox_started",
      {{"job", key.job_id}, {"attempt", key.attempt}, {"uid", uid},
       {"holder", entry.sandbox->holder_pid()}, {"devices", spec.devices.size()}});
  const JobSandbox* started = entry.sandbox.get();
  sandboxes_.emplace(attempt, std::move(entry));
  return started;
}

bool Sandboxes::NotifyOnce(const protocols::RankKey& key, int signal) {
  auto it = sandboxes_.find({key.job_id, key.attempt});
  if (it == sandboxes_.end() || it->second.noticed) return false;
  it->second.noticed = true;
  return it->second.sandbox->SignalAll(signal).ok();
}

void Sandboxes::Remove(Entry& entry) {
  entry.sandbox->Destroy();
  entry.cgroup.reset();  // empty now: every process of it is gone
  std::error_code ignored;
  fs::remove(entry.pid_file, ignored);
}

}  // namespace sublet::worker
