// One job attempt's sandbox on one node: the namespaces that all of the
// attempt's ranks on this node share, and the storage they may touch.
//
// A sandbox is a holder process, PID 1 of a new PID namespace, in new mount
// and IPC namespaces. Ranks join those namespaces (worker/confinement.h,
// SandboxConfinement), so shared-memory collectives between them keep
// working while nothing outside the job is visible:
//   - every host mount is read-only (mount_setattr, recursively), and what
//     the job may write is mounted on top: the job's storage, the ranks'
//     directory, the shared directories, and /tmp and /dev/shm, private tmpfs
//     (nosuid, nodev, size-limited);
//   - /sys/fs/cgroup is an empty tmpfs;
//   - /dev holds only null, zero, full, random, urandom, tty and the devices
//     the spec names (the GPUs given to the job here);
//   - /proc is the new PID namespace's, with hidepid=2: only the job's
//     processes of the rank's uid (not the holder);
//   - the storage root is an empty tmpfs except <tenant>/<job>, and the
//     worker's work directory is one except the ranks' directory and the
//     control socket; each dir in `hidden` is an empty tmpfs.
// Everything a rank starts, even in a new session, lives in the PID
// namespace; Destroy() SIGKILLs the holder, which makes the kernel kill every
// process in it, and returns once they are all gone.
//
// Storage is made race-free: each directory under the storage root is opened
// with O_NOFOLLOW relative to its parent's descriptor and changed through
// that descriptor, so a tenant who swaps a path for a symlink makes the
// launch fail instead of redirecting root. The mounts bind those very
// descriptors (/proc/self/fd/N), never a path a tenant can change.
//
// Thread-safety: none; the worker's event-loop thread owns its sandboxes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/internal/unique_fd.h"

namespace sublet::worker {

// A device node made visible in a sandbox's /dev: a character device at
// `host_path` (its major and minor are copied) appears as /dev/<name>.
struct DeviceNode {
  std::string host_path;
  std::string name;  // one path component, e.g. "nvidia0"
};

struct JobSandboxSpec {
  std::string label;  // "job 7 attempt 2": for messages
  uid_t uid = 0;      // the tenant's identity (never 0)
  gid_t gid = 0;
  // Shared storage: <storage_root>/<tenant> (0700, uid) and
  // <storage_root>/<tenant>/<job>/checkpoints are created if missing.
  std::string storage_root;  // absolute, admin-owned
  std::string tenant;        // one path component
  std::string job;           // one path component
  // The worker's work directory, hidden except `rank_dir` (the ranks' working
  // directory, which the caller created under it) and `control_socket`.
  std::string work_root;       // absolute
  std::string rank_dir;        // absolute, under work_root
  std::string control_socket;  // absolute, under work_root; "" for none
  std::vector<std::string> hidden;  // absolute host directories to hide
  // Host directories every job sees at the same path, as the host's
  // permissions allow (e.g. a dataset); none may contain or lie inside the
  // storage root or the work directory.
  std::vector<std::string> shared;
  std::vector<DeviceNode> devices;  // beyond the standard ones
  uint64_t tmp_bytes = uint64_t{4} << 30;
  uint64_t shm_bytes = uint64_t{8} << 30;
  // Open cgroup.procs files of the attempt's cgroup (worker/job_cgroup.h),
  // not owned; the holder and every rank join it. Empty: no cgroup.
  std::vector<int> cgroup_procs_fds;
};

// What a rank needs to join a sandbox (worker/confinement.h).
struct SandboxHandle {
  int mnt_fd = -1;  // /proc/<holder>/ns/mnt
  int ipc_fd = -1;
  int pid_fd = -1;
  uid_t uid = 0;
  gid_t gid = 0;
  int cgroup_fds[2] = {-1, -1};  // cgroup.procs files to join; -1: none
};

class JobSandbox {
 public:
  // Makes the storage, starts the holder and waits until its namespaces are
  // set up. Errors: InvalidArgument (a path in the spec that is not
  // absolute or not one component), FailedPrecondition (storage that a
  // tenant tampered with, e.g. a symlink, or a directory owned by another
  // uid), Internal (a syscall failed; the message names the step).
  static absl::StatusOr<std::unique_ptr<JobSandbox>> Start(const JobSandboxSpec& spec);

  // Destroy()s.
  ~JobSandbox();
  JobSandbox(const JobSandbox&) = delete;
  JobSandbox& operator=(const JobSandbox&) = delete;

  int holder_pid() const { return holder_pid_; }
  const std::string& label() const { return label_; }
  const SandboxHandle& handle() const { return handle_; }

  // Sends `signal` to every process in the sandbox but the holder (through
  // the holder, which relays SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2).
  // InvalidArgument for another signal, NotFound when the holder is gone.
  absl::Status SignalAll(int signal);

  // SIGKILLs the holder and waits for it: when this returns, no process of
  // the sandbox is left. Idempotent.
  void Destroy();

  // Non-blocking: true once the holder has exited (it was killed, or could
  // not run), and reaps it.
  bool Exited();

 private:
  JobSandbox() = default;

  std::string label_;
  int holder_pid_ = 0;
  bool reaped_ = false;
  internal::UniqueFd mnt_, ipc_, pid_;
  SandboxHandle handle_;
};

// The storage steps of Start, on their own for tests: makes
// <root>/<tenant> (0700, owned by uid:gid; the root itself becomes 0711, so
// tenants cannot list it) and <tenant>/<job>/checkpoints (owned by uid:gid),
// and returns a descriptor of <tenant>/<job>. A directory that exists is
// kept if uid owns it, or taken over from root; anything else (a symlink, a
// non-directory, another owner) is FailedPrecondition naming the path.
absl::StatusOr<internal::UniqueFd> PrepareJobStorage(const std::string& storage_root,
                                                     const std::string& tenant,
                                                     const std::string& job, uid_t uid, gid_t gid);

}  // namespace sublet::worker
