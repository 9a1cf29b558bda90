#include "worker/job_sandbox.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/exit_codes.h"
#include "fmt/format.h"
#include "worker/internal/child_io.h"

namespace sublet::worker {
namespace {

namespace fs = std::filesystem;
using internal::UniqueFd;

absl::Status ErrnoError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
}

bool IsOneComponent(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.size() <= 255 &&
         name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

bool IsAbsolute(const std::string& path) {
  return !path.empty() && path[0] == '/' && path.find('\0') == std::string::npos;
}

// `path` lies strictly inside `dir` (both normalised).
bool IsUnder(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.starts_with(dir) &&
         (dir == "/" || path[dir.size()] == '/');
}

std::string Normal(const std::string& path) {
  std::string normal = std::filesystem::path(path).lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  return normal;
}

// Makes (or finds) the directory `name` in `parent` and opens it without
// following a symlink. A directory root owns is handed to uid:gid; one that
// another uid owns is refused.
absl::StatusOr<UniqueFd> OwnedDir(int parent, const std::string& name, const std::string& path,
                                  mode_t mode, uid_t uid, gid_t gid, bool force_mode) {
  if (mkdirat(parent, name.c_str(), mode) != 0 && errno != EEXIST) {
    return ErrnoError(absl::StrCat("create ", path));
  }
  UniqueFd fd(openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ELOOP || errno == ENOTDIR) {
      return absl::FailedPreconditionError(
          fmt::format("{} is not a directory (a symlink or a file there is refused)", path));
    }
    return ErrnoError(absl::StrCat("open ", path));
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return ErrnoError(absl::StrCat("stat ", path));
  if (st.st_uid != uid) {
    if (st.st_uid != 0) {
      return absl::FailedPreconditionError(
          fmt::format("{} belongs to uid {}, not to the tenant's uid {}", path, st.st_uid, uid));
    }
    if (fchown(fd.get(), uid, gid) != 0) return ErrnoError(absl::StrCat("chown ", path));
    force_mode = true;
  }
  if (force_mode && fchmod(fd.get(), mode) != 0) return ErrnoError(absl::StrCat("chmod ", path));
  return fd;
}

// ---- the holder's plan: built by the parent, run by the child -------------

// One step of the holder's setup. Strings are owned by the plan; the child
// only reads c_str()s.
struct Op {
  enum Kind { kMkdir, kMkfile, kMount, kMoveMount, kReadOnlyTree, kMknod, kSymlink } kind;
  std::string path;    // target
  std::string source;  // mount source, symlink target
  std::string fstype;  // mount
  std::string data;    // mount options
  unsigned long flags = 0;
  mode_t mode = 0;
  dev_t device = 0;
  int fd = -1;       // kMoveMount: the detached tree
  std::string what;  // for the failure message
};

struct HolderPlan {
  std::vector<Op> ops;
  int report_fd = -1;  // the ready-pipe's write end
};

void AddMkdirs(std::vector<Op>& ops, const std::string& path, bool including_last) {
  std::string prefix;
  std::vector<std::string> parts;
  for (const auto& part : std::filesystem::path(path)) {
    if (part == "/") continue;
    parts.push_back(part.string());
  }
  const size_t n = including_last ? parts.size() : parts.empty() ? 0 : parts.size() - 1;
  for (size_t i = 0; i < n; ++i) {
    prefix += "/" + parts[i];
    ops.push_back({.kind = Op::kMkdir, .path = prefix, .mode = 0711,
                   .what = absl::StrCat("create ", prefix)});
  }
}

void AddTmpfs(std::vector<Op>& ops, const std::string& path, const std::string& data,
              unsigned long flags) {
  AddMkdirs(ops, path, /*including_last=*/true);
  ops.push_back({.kind = Op::kMount, .path = path, .source = "tmpfs", .fstype = "tmpfs",
                 .data = data, .flags = flags, .what = absl::StrCat("mount a tmpfs on ", path)});
}

// Attaches `tree` (a detached copy of what the parent opened, from
// open_tree: a mount of this namespace cannot bind one of another) at
// `target`.
void AddBind(std::vector<Op>& ops, int tree, const std::string& target, bool is_dir) {
  AddMkdirs(ops, target, /*including_last=*/is_dir);
  if (!is_dir) {
    ops.push_back({.kind = Op::kMkfile, .path = target, .mode = 0600,
                   .what = absl::StrCat("create ", target)});
  }
  ops.push_back({.kind = Op::kMoveMount, .path = target, .fd = tree,
                 .what = absl::StrCat("bind ", target)});
  ops.push_back({.kind = Op::kMount, .path = target, .source = "none",
                 .flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV,
                 .what = absl::StrCat("make ", target, " nosuid and nodev")});
}

absl::StatusOr<dev_t> CharDevice(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return ErrnoError(absl::StrCat("stat ", path));
  if (!S_ISCHR(st.st_mode)) {
    return absl::InvalidArgumentError(fmt::format("{} is not a character device", path));
  }
  return st.st_rdev;
}

// ---- the holder (child side: async-signal-safe only) ----------------------

[[noreturn]] void HolderFail(const HolderPlan& plan, const char* what, int error) {
  internal::WriteFailure(plan.report_fd, "", what, error, "");
  _exit(kExitCannotExecute);
}

// What the holder relays to the whole sandbox (JobSandbox::SignalAll): the
// notice signals a job spec may choose, protocols::PreemptionSignalNames().
constexpr int kRelayedSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2};

void Relay(int signal) { kill(-1, signal); }

bool RunOp(const Op& op) {
  switch (op.kind) {
    case Op::kMkdir:
      return mkdir(op.path.c_str(), op.mode) == 0 || errno == EEXIST;
    case Op::kMkfile: {
      const int fd = open(op.path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, op.mode);
      if (fd < 0) return false;
      close(fd);
      return true;
    }
    case Op::kMount:
      return mount(op.source.c_str(), op.path.c_str(),
                   op.fstype.empty() ? nullptr : op.fstype.c_str(), op.flags,
                   op.data.empty() ? nullptr : op.data.c_str()) == 0;
    case Op::kMoveMount:
      return move_mount(op.fd, "", AT_FDCWD, op.path.c_str(), MOVE_MOUNT_F_EMPTY_PATH) == 0;
    case Op::kReadOnlyTree: {
      struct mount_attr attr {};
      attr.attr_set = MOUNT_ATTR_RDONLY;
      return mount_setattr(AT_FDCWD, op.path.c_str(), AT_RECURSIVE, &attr, sizeof(attr)) == 0;
    }
    case Op::kMknod:
      return mknod(op.path.c_str(), S_IFCHR | op.mode, op.device) == 0;
    case Op::kSymlink:
      return symlink(op.source.c_str(), op.path.c_str()) == 0;
  }
  return false;
}

[[noreturn]] void HolderMain(const HolderPlan& plan) {
  // Die with the worker: the kernel then kills the whole namespace.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) HolderFail(plan, "set the parent-death signal", errno);
  if (setsid() < 0) HolderFail(plan, "setsid", errno);
  umask(0);
  for (const Op& op : plan.ops) {
    if (!RunOp(op)) HolderFail(plan, op.what.c_str(), errno);
  }
  struct sigaction relay {};
  relay.sa_handler = Relay;
  sigemptyset(&relay.sa_mask);
  relay.sa_flags = SA_RESTART;
  for (int sig : kRelayedSignals) {
    if (sigaction(sig, &relay, nullptr) != 0) HolderFail(plan, "install the signal relay", errno);
  }
  // Orphans in the namespace are re-parented to us: let the kernel reap them.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  if (sigaction(SIGCHLD, &ignore, nullptr) != 0) HolderFail(plan, "ignore SIGCHLD", errno);
  sigset_t none;
  sigemptyset(&none);
  if (sigprocmask(SIG_SETMASK, &none, nullptr) != 0) HolderFail(plan, "sigprocmask", errno);
  internal::WriteAll(plan.report_fd, "", 1);  // one NUL byte: ready
  syscall(SYS_close_range, 0U, ~0U, 0U);
  for (;;) pause();
}

std::string ReadAll(int fd) {
  std::string out;
  char buffer[512];
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buffer, static_cast<size_t>(n));
  }
}

// A detached copy of the file or directory `fd` is (its mount, cut to it).
absl::StatusOr<UniqueFd> DetachedTree(int fd, const std::string& path) {
  UniqueFd tree(open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
  if (!tree.valid()) return ErrnoError(absl::StrCat("open_tree ", path));
  return tree;
}

absl::StatusOr<UniqueFd> OpenNamespace(int pid, const char* kind) {
  const std::string path = fmt::format("/proc/{}/ns/{}", pid, kind);
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(absl::StrCat("open ", path));
  return fd;
}

}  // namespace

absl::StatusOr<UniqueFd> PrepareJobStorage(const std::string& storage_root,
                                           const std::string& tenant, const std::string& job,
                                           uid_t uid, gid_t gid) {
  if (!IsAbsolute(storage_root)) {
    return absl::InvalidArgumentError(
        fmt::format("storage root '{}' is not an absolute path", storage_root));
  }
  for (const std::string* name : {&tenant, &job}) {
    if (!IsOneComponent(*name)) {
      return absl::InvalidArgumentError(fmt::format("'{}' is not a valid directory name", *name));
    }
  }
  if (uid == 0 || gid == 0) return absl::InvalidArgumentError("a tenant's uid/gid is never 0");
  std::error_code error;
  std::filesystem::create_directories(storage_root, error);
  if (error) {
    return absl::InternalError(fmt::format("create {}: {}", storage_root, error.message()));
  }
  UniqueFd root(open(storage_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return ErrnoError(absl::StrCat("open ", storage_root));
  struct stat st {};
  if (fstat(root.get(), &st) != 0) return ErrnoError(absl::StrCat("stat ", storage_root));
  if (st.st_uid == 0 && (st.st_mode & 07777) != 0711 && fchmod(root.get(), 0711) != 0) {
    return ErrnoError(absl::StrCat("chmod ", storage_root));
  }
  const std::string tenant_path = fmt::format("{}/{}", storage_root, tenant);
  SUBLET_ASSIGN_OR_RETURN(UniqueFd tenant_dir, OwnedDir(root.get(), tenant, tenant_path, 0700, uid,
                                                        gid, /*force_mode=*/true));
  const std::string job_path = fmt::format("{}/{}", tenant_path, job);
  SUBLET_ASSIGN_OR_RETURN(UniqueFd job_dir, OwnedDir(tenant_dir.get(), job, job_path, 0700, uid,
                                                     gid, /*force_mode=*/false));
  SUBLET_ASSIGN_OR_RETURN(UniqueFd checkpoints,
                          OwnedDir(job_dir.get(), "checkpoints", job_path + "/checkpoints", 0700,
                                   uid, gid, /*force_mode=*/false));
  return job_dir;
}

absl::StatusOr<std::unique_ptr<JobSandbox>> JobSandbox::Start(const JobSandboxSpec& spec) {
  for (const std::string* path : {&spec.work_root, &spec.rank_dir}) {
    if (!IsAbsolute(*path)) {
      return absl::InvalidArgumentError(fmt::format("'{}' is not an absolute path", *path));
    }
  }
  const std::string work_root = Normal(spec.work_root);
  const std::string storage_root = Normal(spec.storage_root);
  const std::string rank_dir = Normal(spec.rank_dir);
  if (!IsUnder(rank_dir, work_root)) {
    return absl::InvalidArgumentError(fmt::format("{} is not under {}", rank_dir, work_root));
  }
  SUBLET_ASSIGN_OR_RETURN(UniqueFd job_dir,
                          PrepareJobStorage(storage_root, spec.tenant, spec.job, spec.uid, spec.gid));
  UniqueFd rank_fd(open(rank_dir.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!rank_fd.valid()) return ErrnoError(absl::StrCat("open ", rank_dir));
  UniqueFd socket_fd;
  std::string control_socket;
  if (!spec.control_socket.empty()) {
    control_socket = Normal(spec.control_socket);
    if (!IsAbsolute(control_socket) || !IsUnder(control_socket, work_root)) {
      return absl::InvalidArgumentError(
          fmt::format("control socket {} is not under {}", control_socket, work_root));
    }
    socket_fd.reset(open(control_socket.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!socket_fd.valid()) return ErrnoError(absl::StrCat("open ", control_socket));
  }

  // Masks, outer ones first so that an inner one is made inside them.
  std::vector<std::string> masks = {storage_root, work_root, "/tmp", "/dev"};
  // Other jobs' cgroups (names, usage) are none of a rank's business.
  if (std::error_code error; fs::is_directory("/sys/fs/cgroup", error)) {
    masks.push_back("/sys/fs/cgroup");
  }
  for (const std::string& dir : spec.hidden) {
    if (!IsAbsolute(dir)) {
      return absl::InvalidArgumentError(fmt::format("hidden dir '{}' is not absolute", dir));
    }
    std::error_code error;
    if (std::filesystem::is_directory(dir, error)) masks.push_back(Normal(dir));
  }
  // A host directory the tenant's uid cannot traverse (e.g. /root, 0700)
  // would cut the ranks off from what is bound below it; in the sandbox it
  // becomes an empty tmpfs instead, which hides nothing the uid could read.
  for (const std::string& root : {storage_root, work_root}) {
    for (fs::path p = fs::path(root).parent_path(); p != p.root_path(); p = p.parent_path()) {
      struct stat st {};
      if (stat(p.c_str(), &st) == 0 && (st.st_mode & S_IXOTH) == 0) masks.push_back(p.string());
    }
  }
  std::sort(masks.begin(), masks.end());
  masks.erase(std::unique(masks.begin(), masks.end()), masks.end());

  HolderPlan plan;
  plan.ops.push_back({.kind = Op::kMount, .path = "/", .source = "none",
                      .flags = MS_REC | MS_PRIVATE, .what = "make the mounts private"});
  // The host's files are read-only for the job (no /var/tmp channel between
  // tenants, nothing left behind); what it may write is mounted below.
  plan.ops.push_back({.kind = Op::kReadOnlyTree, .path = "/",
                      .what = "make the host's mounts read-only"});
  for (const std::string& mask : masks) {
    if (mask == "/") return absl::InvalidArgumentError("cannot hide /");
    if (mask == "/tmp") {
      AddTmpfs(plan.ops, mask, fmt::format("mode=1777,size={}", spec.tmp_bytes),
               MS_NOSUID | MS_NODEV);
    } else if (mask == "/dev") {
      AddTmpfs(plan.ops, mask, "mode=0755,size=65536", MS_NOSUID | MS_NOEXEC);
    } else {
      AddTmpfs(plan.ops, mask, "mode=0711,size=1048576", MS_NOSUID | MS_NODEV | MS_NOEXEC);
    }
  }
  const std::string job_path = fmt::format("{}/{}/{}", storage_root, spec.tenant, spec.job);
  SUBLET_ASSIGN_OR_RETURN(UniqueFd job_tree, DetachedTree(job_dir.get(), job_path));
  SUBLET_ASSIGN_OR_RETURN(UniqueFd rank_tree, DetachedTree(rank_fd.get(), rank_dir));
  UniqueFd socket_tree;
  if (socket_fd.valid()) {
    SUBLET_ASSIGN_OR_RETURN(socket_tree, DetachedTree(socket_fd.get(), control_socket));
  }
  std::vector<UniqueFd> shared_trees;
  for (const std::string& dir : spec.shared) {
    const std::string path = Normal(dir);
    if (!IsAbsolute(path)) {
      return absl::InvalidArgumentError(fmt::format("shared dir '{}' is not absolute", dir));
    }
    for (const std::string* root : {&storage_root, &work_root}) {
      if (path == *root || IsUnder(path, *root) || IsUnder(*root, path)) {
        return absl::InvalidArgumentError(
            fmt::format("shared dir {} overlaps {}, which only the job's parts of may be seen",
                        path, *root));
      }
    }
    UniqueFd fd(open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoError(absl::StrCat("open shared dir ", path));
    SUBLET_ASSIGN_OR_RETURN(UniqueFd tree, DetachedTree(fd.get(), path));
    AddBind(plan.ops, tree.get(), path, /*is_dir=*/true);
    shared_trees.push_back(std::move(tree));
  }
  AddBind(plan.ops, job_tree.get(), job_path, /*is_dir=*/true);
  AddBind(plan.ops, rank_tree.get(), rank_dir, /*is_dir=*/true);
  if (socket_tree.valid()) AddBind(plan.ops, socket_tree.get(), control_socket, /*is_dir=*/false);

  std::vector<DeviceNode> devices;
  for (const char* name : {"null", "zero", "full", "random", "urandom", "tty"}) {
    devices.push_back({absl::StrCat("/dev/", name), name});
  }
  devices.insert(devices.end(), spec.devices.begin(), spec.devices.end());
  for (const DeviceNode& node : devices) {
    if (!IsOneComponent(node.name)) {
      return absl::InvalidArgumentError(fmt::format("bad device name '{}'", node.name));
    }
    SUBLET_ASSIGN_OR_RETURN(dev_t device, CharDevice(node.host_path));
    const std::string path = "/dev/" + node.name;
    plan.ops.push_back({.kind = Op::kMknod, .path = path, .mode = 0666, .device = device,
                        .what = absl::StrCat("create ", path)});
  }
  constexpr std::pair<const char*, const char*> kLinks[] = {{"fd", "/proc/self/fd"},
                                                            {"stdin", "/proc/self/fd/0"},
                                                            {"stdout", "/proc/self/fd/1"},
                                                            {"stderr", "/proc/self/fd/2"}};
  for (const auto& [name, target] : kLinks) {
    plan.ops.push_back({.kind = Op::kSymlink, .path = absl::StrCat("/dev/", name),
                        .source = target, .what = absl::StrCat("link /dev/", name)});
  }
  plan.ops.push_back({.kind = Op::kMkdir, .path = "/dev/shm", .mode = 01777,
                      .what = "create /dev/shm"});
  plan.ops.push_back({.kind = Op::kMount, .path = "/dev/shm", .source = "tmpfs", .fstype = "tmpfs",
                      .data = fmt::format("mode=1777,size={}", spec.shm_bytes),
                      .flags = MS_NOSUID | MS_NODEV, .what = "mount a tmpfs on /dev/shm"});
  // hidepid=2: the holder (root, with the worker's command line) is not
  // there for the ranks at all.
  plan.ops.push_back({.kind = Op::kMount, .path = "/proc", .source = "proc", .fstype = "proc",
                      .data = "hidepid=2", .flags = MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      .what = "mount the job's /proc"});

  int ends[2];
  if (pipe2(ends, O_CLOEXEC) != 0) return ErrnoError("create the sandbox's ready-pipe");
  UniqueFd ready_read(ends[0]);
  UniqueFd ready_write(ends[1]);
  plan.report_fd = ready_write.get();

  // Like fork, but the child is PID 1 of new PID, mount and IPC namespaces.
  const long pid = syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | SIGCHLD,
                           nullptr, nullptr, nullptr, 0);
  if (pid == 0) HolderMain(plan);
  if (pid < 0) return ErrnoError("clone the sandbox holder");
  std::unique_ptr<JobSandbox> sandbox(new JobSandbox());
  sandbox->label_ = spec.label;
  sandbox->holder_pid_ = static_cast<int>(pid);
  const std::string holder = std::to_string(pid);
  for (int fd : spec.cgroup_procs_fds) {
    if (write(fd, holder.data(), holder.size()) != static_cast<ssize_t>(holder.size())) {
      const absl::Status failed = ErrnoError("move the sandbox holder into the job's cgroup");
      sandbox->Destroy();
      return failed;
    }
  }
  ready_write.reset();
  const std::string said = ReadAll(ready_read.get());
  if (said != std::string(1, '\0')) {
    sandbox->Destroy();
    return absl::InternalError(fmt::format(
        "cannot set up the sandbox of {}: {}", spec.label,
        said.empty() ? std::string("its holder died during set-up") : said));
  }
  SUBLET_ASSIGN_OR_RETURN(sandbox->mnt_, OpenNamespace(sandbox->holder_pid_, "mnt"));
  SUBLET_ASSIGN_OR_RETURN(sandbox->ipc_, OpenNamespace(sandbox->holder_pid_, "ipc"));
  SUBLET_ASSIGN_OR_RETURN(sandbox->pid_, OpenNamespace(sandbox->holder_pid_, "pid"));
  sandbox->handle_ = {.mnt_fd = sandbox->mnt_.get(), .ipc_fd = sandbox->ipc_.get(),
                      .pid_fd = sandbox->pid_.get(), .uid = spec.uid, .gid = spec.gid};
  for (size_t i = 0; i < spec.cgroup_procs_fds.size() && i < 2; ++i) {
    sandbox->handle_.cgroup_fds[i] = spec.cgroup_procs_fds[i];
  }
  return sandbox;
}

JobSandbox::~JobSandbox() { Destroy(); }

absl::Status JobSandbox::SignalAll(int signal) {
  if (std::find(std::begin(kRelayedSignals), std::end(kRelayedSignals), signal) ==
      std::end(kRelayedSignals)) {
    return absl::InvalidArgumentError(fmt::format("signal {} is not relayed", signal));
  }
  if (reaped_ || kill(holder_pid_, signal) != 0) {
    return absl::NotFoundError(fmt::format("the sandbox of {} is gone", label_));
  }
  return absl::OkStatus();
}

void JobSandbox::Destroy() {
  if (reaped_ || holder_pid_ <= 0) return;
  kill(holder_pid_, SIGKILL);
  // The holder's exit completes only after every process in its PID
  // namespace has been reaped.
  while (waitpid(holder_pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
}

bool JobSandbox::Exited() {
  if (reaped_) return true;
  const pid_t r = waitpid(holder_pid_, nullptr, WNOHANG);
  if (r == holder_pid_ || (r < 0 && errno == ECHILD)) reaped_ = true;
  return reaped_;
}

}  // namespace sublet::worker
